"""The `evo1` command as a user runs it: a real process, its exit code, stdout and stderr."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from evo1cli.runtime.device import choose_placement


def evo1(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_lists_the_commands():
    result = evo1("--help")
    assert result.returncode == 0
    for command in ("info", "smoke", "model"):
        assert command in result.stdout


def test_info_json():
    result = evo1("info", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["packages"]["torch"] and data["packages"]["transformers"]
    assert data["device"]["type"] in ("cpu", "cuda", "mps")
    assert data["attention_backends"]["sdpa"] and data["attention_backends"]["eager"]
    assert data["cpu"]["torch_threads"] >= 1 and "MUJOCO_GL" in data["env"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny"
    result = evo1("model", "init", "--preset", "tiny", "--out", str(out), "--state-dim", "8", "--action-dim", "4")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_init_inspect_predict(checkpoint, tmp_path):
    info = json.loads(evo1("model", "inspect", str(checkpoint), "--json").stdout)
    assert info["config"]["backbone"] == "tiny"
    assert info["parameters"]["total"] == sum(info["parameters"][k] for k in ("vision", "llm", "action_head"))
    assert info["stats"] == [{"embodiment": "default", "dataset": "default", "state_dim": 8, "action_dim": 4}]

    image = tmp_path / "cam.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(image)
    args = ["model", "predict", str(checkpoint), "--image", str(image), "--image", "none", "--prompt", "reach",
            "--state", "0,0.1,0.2,0.3,0,0,0,0", "--steps", "5", "--json"]  # fmt: skip
    result = evo1(*args)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["horizon"], out["action_dim"]) == (50, 4)
    assert np.array(out["actions"]).shape == (50, 4)
    assert evo1(*args).stdout == result.stdout, "same seed, same actions"


@pytest.mark.slow
def test_bad_inputs_get_one_line_errors(checkpoint, tmp_path):
    assert_clean_error(evo1("model", "inspect", str(tmp_path / "missing")), "no such checkpoint directory")
    base = ["model", "predict", str(checkpoint), "--prompt", "x"]
    assert_clean_error(evo1(*base, "--state", "1,2,three"), "--state")
    assert_clean_error(evo1(*base, "--state", "1,2,3"), "observations[0].state", "expected 8 values")
    assert_clean_error(evo1(*base, "--state", "0,0,0,0,0,0,0,0", "--image", str(tmp_path / "no.png")), "no.png")

    broken = tmp_path / "broken"
    evo1("model", "init", "--out", str(broken))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert_clean_error(evo1("model", "inspect", str(broken)), str(weights), "truncated")
    assert_clean_error(evo1("model", "init", "--out", str(tmp_path / "x"), "--preset", "huge"), "unknown preset")


@pytest.mark.slow
def test_unavailable_pretrained_backbone_is_a_clear_error(tmp_path):
    result = evo1(
        "model", "init", "--preset", "tiny", "--backbone-path", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")
    )
    assert_clean_error(result, "backbone_path", "nowhere")
    assert not (tmp_path / "o").exists()


def test_core_dependencies_import():
    """The video, image and table libraries the data commands build on load on a fresh install."""
    result = subprocess.run(
        [sys.executable, "-c", "import av, cv2, pyarrow, PIL, yaml, safetensors; print(cv2.__version__)"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--checkpoint", "{ckpt}", "--port", "0"],
        ["model", "predict", "{ckpt}", "--image", "none", "--prompt", "p", "--state", "0,0,0,0,0,0,0,0"],
        ["bench", "metaworld", "-c", "{ckpt}", "--tasks", "reach-v3", "--episodes", "1"],
        ["deploy", "so100", "--fake", "-c", "{ckpt}", "--task", "t"],
    ],
    ids=["serve", "predict", "bench", "deploy"],
)
def test_serve_bench_deploy_and_predict_decide_the_device_in_one_place(checkpoint, command):
    """An impossible --device fails at the decision, with its one line, before anything is loaded or run."""
    if choose_placement().device.startswith("cuda"):
        pytest.skip("this machine has a CUDA device")
    result = evo1(*[a.replace("{ckpt}", str(checkpoint)) for a in command], "--device", "cuda", "--dtype", "float32")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == "error: --device: no CUDA device is visible (torch sees none); use --device cpu"


@pytest.mark.slow
def test_predict_announces_the_placement_and_runs_in_it(checkpoint):
    common = ["model", "predict", str(checkpoint), "--image", "none", "--prompt", "p", "--state", "0,0,0,0,0,0,0,0"]
    fp32 = evo1(*common, "--device", "cpu", "--dtype", "float32", "--json")
    assert fp32.returncode == 0, fp32.stderr
    bf16 = evo1(*common, "--device", "cpu", "--dtype", "bfloat16", "--json")
    assert bf16.returncode == 0, bf16.stderr
    (a, a_info), (b, b_info) = ((np.array(d["actions"]), d) for d in (json.loads(r.stdout) for r in (fp32, bf16)))
    assert (a_info["device"], a_info["dtype"]) == ("cpu", "float32")
    assert a_info["placement"] == "cpu as asked; float32 as asked"
    assert (b_info["device"], b_info["dtype"]) == ("cpu", "bfloat16")
    human = evo1(*common, "--device", "cpu", "--dtype", "float32")
    assert human.stderr.startswith("device cpu, float32 (cpu as asked; float32 as asked)")  # the banner, on stderr
    assert a.shape == b.shape == (50, 4) and not np.array_equal(a, b)  # really ran in another precision
    assert np.abs(a - b).max() < 0.25 * np.abs(a).max() + 0.1  # ... and still the same policy
