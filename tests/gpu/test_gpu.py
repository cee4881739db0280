"""The GPU path: every command that runs a policy, on CUDA, against the CPU float32 result (marker `gpu`).

Collected only where CUDA is available; elsewhere the module is skipped in one line. Two environment
variables rehearse the same test bodies anywhere (`scripts/gpu-check --device cpu --preset tiny` sets them):

    EVO1_GPU_DEVICE   the device under test: cuda (default), cuda:N or cpu
    EVO1_GPU_PRESET   full (default: InternVL3-1B architecture, random weights) or tiny
    EVO1_GPU_OUT      a folder for the figures the suite measures (gpu-figures.json); default: none written

Full size where only full size shows the problem (memory, kernels picked by shape); random weights
(`backbone_init: random`), so nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

DEVICE = os.environ.get("EVO1_GPU_DEVICE", "cuda")
PRESET = os.environ.get("EVO1_GPU_PRESET", "full")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip("CUDA not available (EVO1_GPU_DEVICE=cpu EVO1_GPU_PRESET=tiny rehearses it)", allow_module_level=True)
if PRESET not in ("full", "tiny"):
    raise ValueError(f"EVO1_GPU_PRESET: {PRESET!r}, expected full or tiny")

from conftest import make_dataset  # noqa: E402  (tests/conftest.py)
from test_interop import (  # noqa: E402  (tests/test_interop.py: the fixtures' references and how to read them)
    AUTHORS,
    LEROBOT,
    authors_cases,
    lerobot_batch,
    max_relative_error,
)

from evo1cli.client.chunks import Query  # noqa: E402
from evo1cli.model.config import Evo1Config  # noqa: E402
from evo1cli.model.normalization import NormStats, StatsTable  # noqa: E402
from evo1cli.model.policy import Evo1Model  # noqa: E402
from evo1cli.runtime.policy import LocalPolicy  # noqa: E402

pytestmark = pytest.mark.gpu

PRESET_NAME = {"full": "internvl3-1b", "tiny": "tiny"}[PRESET]
CUDA = DEVICE.startswith("cuda")
EVO1 = [sys.executable, "-m", "evo1cli"]
FP32_BOUND = 1e-4  # ‖device − cpu‖ / ‖cpu‖ over the batch's chunks, float32 (TF32 off)
# bf16 against the CPU float32 chunk. PROVISIONAL: nobody has run this on a GPU yet; the first GPU run prints
# the measured figure (and gpu-figures.json records it): set this bound to about twice it and say so in the docs.
BF16_BOUND = 5e-2
# The rehearsal (tiny) trims what only costs time: Euler steps and simulated steps.
EULER_STEPS = None if PRESET == "full" else 8  # None: the checkpoint's own (50)
BENCH_STEPS = 30 if PRESET == "full" else 8
PROMPTS = ["Pick up the red cube", "open the drawer and put the cup inside it, then close it", "push", "reach the goal"]


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def record(name: str, value) -> None:
    """Add one figure to EVO1_GPU_OUT/gpu-figures.json (what the summary prints and the docs take)."""
    out = os.environ.get("EVO1_GPU_OUT")
    if not out:
        return
    path = Path(out) / "gpu-figures.json"
    figures = json.loads(path.read_text()) if path.is_file() else {}
    figures[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1))


def run_cli(*args, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), **(env or {})}
    return subprocess.run([*EVO1, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def cli_device() -> str:
    """`--device auto` on a CUDA machine (the issue's case: auto must pick the GPU); the override elsewhere."""
    return "auto" if CUDA else DEVICE


@pytest.fixture(autouse=True)
def strict_float32():
    """float32 means float32: TF32 in convolutions (cuDNN's default) and matmuls would cost about 1e-3."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------- LocalPolicy
@pytest.fixture(scope="module")
def cpu_model() -> Evo1Model:
    stats = StatsTable()
    stats.add("robot", "demo", NormStats.identity(8, 7))
    torch.manual_seed(0)
    return Evo1Model.build(Evo1Config.preset(PRESET_NAME, backbone_init="random"), torch.float32, stats).eval()


@pytest.fixture(scope="module")
def queries(cpu_model) -> list[Query]:
    """8 queries: 1 to 3 views present (absent ones None), prompts of 1 to 13 words (padding masks), seeded noise."""
    rng = np.random.default_rng(1)
    size = cpu_model.config.image_size
    present = [(1, 0, 0), (1, 1, 0), (1, 1, 1), (0, 1, 0), (1, 0, 1), (1, 1, 1), (0, 0, 1), (1, 0, 0)]
    return [
        Query([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if p else None for p in views],
              rng.uniform(-1, 1, 8), PROMPTS[i % len(PROMPTS)], seed=11, index=i)
        for i, views in enumerate(present)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cpu_chunks(cpu_model, queries) -> np.ndarray:
    """The reference: the batch of 8 on the CPU in float32 (a query's chunk does not depend on its batch)."""
    return np.stack(LocalPolicy(cpu_model, "robot", "demo", num_steps=EULER_STEPS).infer(queries))


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 8])
def test_local_policy_on_the_device_matches_the_cpu_float32_chunk(
    cpu_model, queries, cpu_chunks, dtype: str, backend: str, batch: int
) -> None:
    model = copy.deepcopy(cpu_model).to(DEVICE, getattr(torch, dtype))
    model.set_attention_backend(backend)
    got = np.stack(LocalPolicy(model, "robot", "demo", num_steps=EULER_STEPS).infer(queries[:batch]))
    del model
    assert got.shape == cpu_chunks[:batch].shape and np.isfinite(got).all()
    error = relative(got, cpu_chunks[:batch])
    print(f"{DEVICE} {dtype} {backend} batch {batch}: relative error {error:.2e}")
    record(f"chunk_error.{dtype}.{backend}.batch{batch}", error)
    assert error < (FP32_BOUND if dtype == "float32" else BF16_BOUND), error


# ---------------------------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """`evo1 model init` checkpoints: Meta-World widths (state 8, action 4) and SO-100's (6, 6)."""
    root = tmp_path_factory.mktemp("ckpt")
    made = {}
    for name, dims in (("metaworld", (8, 4)), ("so100", (6, 6))):
        result = run_cli("model", "init", "--preset", PRESET_NAME, "--random", "--out", root / name,
                         "--state-dim", dims[0], "--action-dim", dims[1])  # fmt: skip
        assert result.returncode == 0, result.stderr
        made[name] = root / name
    return made


def test_serve_answers_the_authors_json_client_and_the_msgpack_client(checkpoints):
    from websockets.sync.client import connect

    from evo1cli.client.remote import PolicyClient

    process = subprocess.Popen([*EVO1, "serve", "--checkpoint", str(checkpoints["metaworld"]), "--port", "0",
                                "--device", cli_device(), "--seed", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("serving "), line + process.stderr.read()
        assert (" cuda" in line) == CUDA or DEVICE in line, line  # the banner names the device it picked
        url = line.split(" on ")[1].split(" ")[0]
        rng = np.random.default_rng(2)
        rgb = rng.integers(0, 256, (448, 448, 3), dtype=np.uint8)
        state = np.linspace(-1, 1, 8)
        with PolicyClient(url) as client:
            packed = client.infer([rgb], state, "reach the goal")
        request = {
            "image": [rgb[:, :, ::-1].tolist()] + [np.zeros((448, 448, 3), np.uint8).tolist()] * 2,  # BGR
            "image_mask": [1, 0, 0],
            "state": state.tolist(),
            "prompt": "reach the goal",
            "action_mask": [1] * 4 + [0] * 20,
        }
        with connect(url, max_size=None) as ws:
            ws.send(json.dumps(request))
            reply = np.array(json.loads(ws.recv()))
    finally:
        process.send_signal(2)
        process.wait(60)
    assert packed.shape == (50, 4) and np.isfinite(packed).all()
    assert reply.shape == (50, 24) and not reply[:, 4:].any()
    np.testing.assert_allclose(reply[:, :4], packed, rtol=1e-5, atol=1e-6)  # same seed, same chunk


def test_bench_metaworld_runs_two_episodes_through_the_device_policy(checkpoints, tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "bench"
    result = run_cli("bench", "metaworld", "--checkpoint", checkpoints["metaworld"], "--device", cli_device(),
                     "--tasks", "reach-v3", "--episodes", "2", "--max-steps", BENCH_STEPS, "--videos", "0",
                     "--fast-render", "--out", out, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["episodes"] == 2 and info["tasks"]["reach-v3"]["mean_steps"] > 0


def test_deploy_fake_runs_five_seconds_on_the_device(checkpoints, tmp_path):
    result = run_cli("deploy", "so100", "--fake", "-c", checkpoints["so100"], "--task", "Pick up the cube",
                     "--seconds", 5, "--device", cli_device(), "--json",
                     env={"EVO1_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ended"] == "done" and report["queries"] >= 1, report
    assert report["ticks"] > 10 or not CUDA, report  # a loaded CPU may spend the 5 s in its first chunks
    record("deploy_fake_so100", {k: report[k] for k in ("ticks", "queries", "target_hz")})


# ---------------------------------------------------------------------------------------------- train
def _losses(stage_dir: Path) -> dict[int, float]:
    from evo1cli.train.metrics import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(stage_dir) if "event" not in r}


def _link_large(source: str, target: str) -> None:
    """Hard-link weight files (never rewritten), copy the rest (metrics are appended to on resume)."""
    if os.path.getsize(source) > 2**20:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def test_train_both_stages_in_bf16_then_an_exact_resume(tmp_path):
    """5 steps of stage 1 and of stage 2 with Accelerate in bf16 mixed precision; then stage 2 cut back to
    its step-2 checkpoint and resumed repeats every loss and every weight exactly."""
    import yaml

    data = tmp_path / "toy"
    make_dataset(data, lengths=(14, 11), size=64)
    size = 4 if PRESET == "full" else 8
    recipe = {
        "name": "gpu", "output": str(tmp_path / "ref"), "seed": 3, "precision": "bf16",
        "model": {"preset": PRESET_NAME, "backbone_init": "random", "horizon": 8},
        "data": {"normalization": "bounds", "augmentation": True, "num_workers": 0,
                 "groups": {"toy": {"toy": {"path": str(data), "views": ["observation.images.front"]}}}},
        "train": {"batch_size": size, "lr": 1e-4, "warmup_steps": 2},
        "stage1": {"steps": 5}, "stage2": {"steps": 5},
        "checkpoint": {"every": 2}, "logging": {"every": 1, "tensorboard": False},
    }  # fmt: skip
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    env = {"CUDA_VISIBLE_DEVICES": ""} if not CUDA else {}
    if CUDA and ":" in DEVICE:
        env["CUDA_VISIBLE_DEVICES"] = DEVICE.split(":")[1]
    result = run_cli("train", "--recipe", path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("cuda" in result.stdout) == CUDA, result.stdout[-2000:]  # the run says where it trained
    ref = tmp_path / "ref"
    for stage in ("stage1", "stage2"):
        losses = _losses(ref / stage)
        assert sorted(losses) == [1, 2, 3, 4, 5] and all(np.isfinite(v) for v in losses.values()), (stage, losses)
    record("train_losses", {s: _losses(ref / s) for s in ("stage1", "stage2")})

    cut = tmp_path / "cut"
    # stage 2 at full size writes ~9 GB per checkpoint (AdamW's state): link those files rather than copy them
    shutil.copytree(ref, cut, symlinks=True, copy_function=_link_large)
    checkpoints = cut / "stage2" / "checkpoints"
    for step in checkpoints.iterdir():
        if step.name.isdigit() and int(step.name) > 2:
            shutil.rmtree(step)
    (checkpoints / "last").unlink()
    (checkpoints / "last").symlink_to(f"{2:06d}")
    resumed = run_cli("train", "--recipe", path, "--out", cut, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(cut / "stage2") == _losses(ref / "stage2")  # exactly equal, not approximately
    from evo1cli.model.checkpoint import load_policy

    a = load_policy(ref / "stage2" / "checkpoints" / "last").state_dict()
    b = load_policy(cut / "stage2" / "checkpoints" / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- import
@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imported")
    for name, args in (("authors", [AUTHORS / "checkpoint", "--backbone", AUTHORS / "backbone"]),
                       ("lerobot", [LEROBOT / "pretrained_model"])):  # fmt: skip
        result = run_cli("import", *args, "--out", root / name)
        assert result.returncode == 0, result.stderr[-3000:]
    return {"authors": root / "authors", "lerobot": root / "lerobot"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_imported_checkpoints_predict_their_references_on_the_device(imported, dtype):
    """The fixtures' references are float32 CPU outputs: float32 on the device reproduces them as the CPU
    does (test_interop's 1e-5 loosened to FP32_BOUND for other kernels), bf16 within BF16_BOUND."""
    from evo1cli.model.checkpoint import load_policy

    bound = FP32_BOUND if dtype == "float32" else BF16_BOUND
    authors = load_policy(imported["authors"], dtype=getattr(torch, dtype), device=DEVICE)
    worst = 0.0
    for observation, noise, want in authors_cases():
        got = authors.predict([observation], noise=noise)[0]
        worst = max(worst, max_relative_error(got, want[:, : got.shape[1]]))
    record(f"import_error.authors.{dtype}", worst)
    assert worst < bound, worst

    lerobot = load_policy(imported["lerobot"], dtype=getattr(torch, dtype), device=DEVICE)
    from safetensors.torch import load_file

    ref = load_file(LEROBOT / "reference.safetensors")
    for absent, key in ((False, "action"), (True, "absent.action")):
        observations, noise = lerobot_batch(absent)
        error = max_relative_error(np.stack(lerobot.predict(observations, noise=noise)), ref[key].numpy())
        record(f"import_error.lerobot.{key}.{dtype}", error)
        assert error < bound, (key, error)
