"""Checkpoint import, export and verification against checkpoints written by the authors' code and by LeRobot.

The fixtures (tests/fixtures/README.md) hold each tool's own outputs for fixed inputs and noise: an import
is correct when evo1 reproduces them to float32 precision.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_stats
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from evo1cli.errors import Evo1Error
from evo1cli.interop import authors, lerobot
from evo1cli.interop.convert import export_checkpoint, import_checkpoint, import_record
from evo1cli.interop.formats import EVO1, detect, export_format
from evo1cli.interop.resolve import resolve_checkpoint
from evo1cli.interop.verify import verify_checkpoint
from evo1cli.model.action_head import sinusoid_table
from evo1cli.model.checkpoint import load_policy, save_policy
from evo1cli.model.policy import Evo1Model, Observation

FIXTURES = Path(__file__).parent / "fixtures"
AUTHORS = FIXTURES / "authors_main_small"
LEROBOT = FIXTURES / "lerobot061_evo1_small"
TOLERANCE = 1e-5  # per action dim: max |evo1 - reference| / max |reference|


def max_relative_error(got: np.ndarray, want: np.ndarray) -> float:
    axes = tuple(range(want.ndim - 1))
    return float((np.abs(got - want).max(axis=axes) / np.abs(want).max(axis=axes)).max())


@pytest.fixture(scope="module")
def authors_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("authors") / "evo1"
    import_checkpoint(AUTHORS / "checkpoint", out, backbone=str(AUTHORS / "backbone"))
    return out


@pytest.fixture(scope="module")
def lerobot_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "evo1"
    import_checkpoint(LEROBOT / "pretrained_model", out)
    return out


def authors_cases():
    meta = json.loads((AUTHORS / "reference.json").read_text())
    ref = safe_open(str(AUTHORS / "reference.safetensors"), "pt")
    for i, obs in enumerate(meta["observations"]):
        images = ref.get_tensor(f"obs{i}.images_rgb").numpy()
        present = obs["views_present"]
        views = [images[v] if present[v] else None for v in range(3)]
        observation = Observation(views, obs["prompt"], ref.get_tensor(f"obs{i}.state").numpy())
        yield observation, ref.get_tensor(f"obs{i}.noise_initial")[None], ref.get_tensor(f"obs{i}.d.actions").numpy()


def authors_actions(policy: Evo1Model) -> list[np.ndarray]:
    return [policy.predict([obs], noise=noise)[0] for obs, noise, _ in authors_cases()]


def lerobot_batch(absent: bool = False) -> tuple[list[Observation], torch.Tensor]:
    ref = safe_open(str(LEROBOT / "reference.safetensors"), "pt")
    prompts = json.loads(ref.metadata()["task"])
    front = ref.get_tensor("observation.images.front").permute(0, 2, 3, 1).numpy()
    wrist = ref.get_tensor("observation.images.wrist").permute(0, 2, 3, 1).numpy()
    state = ref.get_tensor("observation.state").numpy()
    observations = [
        Observation([front[i], None if absent else wrist[i], None], prompts[i], state[i]) for i in range(len(prompts))
    ]
    return observations, ref.get_tensor("noise")


def lerobot_actions(policy: Evo1Model, absent: bool = False) -> np.ndarray:
    observations, noise = lerobot_batch(absent)
    return np.stack(policy.predict(observations, noise=noise))


# ---------------------------------------------------------------------------------------------- exactness
def test_authors_import_reproduces_their_outputs(authors_ckpt):
    policy = load_policy(authors_ckpt)
    config = policy.config
    assert (config.num_inference_steps, config.time_index_scale) == (32, 1000)  # release `main` conventions
    assert (config.llm_layers, config.embed_dim, config.num_heads, config.ff_dim, config.image_size) == (
        14,
        64,
        4,
        256,
        112,
    )
    module = authors.safe_torch_load(AUTHORS / "checkpoint" / authors.DEEPSPEED_FILE)["module"]
    table = policy.action_head.time_pos_enc.pe
    assert torch.equal(table, module["action_head.time_pos_enc.pe"].float()), "the sinusoid table comes from the file"
    assert not torch.equal(table, sinusoid_table(1000, 64)), "and the file's is bf16-rounded"
    worst = 0.0
    for (_, _, want), got in zip(authors_cases(), authors_actions(policy), strict=True):
        active = want[:, :4]  # the reference is padded to 24 dims
        assert got.shape == active.shape
        worst = max(worst, max_relative_error(got, active))
    assert worst < TOLERANCE, worst
    assert import_record(authors_ckpt)["verified"] is True


def test_lerobot_import_reproduces_lerobots_outputs(lerobot_ckpt):
    reference = json.loads((LEROBOT / "reference.json").read_text())
    config = json.loads((lerobot_ckpt / "config.json").read_text())
    assert {k: config[k] for k in reference["expected_evo1_config"]} == reference["expected_evo1_config"]
    assert config["normalization_clamp"] is False  # LeRobot's MIN_MAX does not clip
    policy = load_policy(lerobot_ckpt)
    stats = policy.stats.get()
    for feature, ours in (("observation.state", stats.state), ("action", stats.action)):
        want = reference["stats_native"][feature]
        np.testing.assert_allclose(ours.min, want["min"], rtol=1e-6)
        np.testing.assert_allclose(ours.max, want["max"], rtol=1e-6)
    ref = load_file(LEROBOT / "reference.safetensors")
    for absent, key in ((False, "action"), (True, "absent.action")):
        error = max_relative_error(lerobot_actions(policy, absent), ref[key].numpy())
        assert error < TOLERANCE, (key, error)
    assert import_record(lerobot_ckpt)["cameras"] == ["observation.images.front", "observation.images.wrist"]


# ---------------------------------------------------------------------------------------------- verify
def _planted(source: Path, target: Path, name: str, change) -> Path:
    shutil.copytree(source, target)
    weights = load_file(target / "model.safetensors")
    weights[name] = change(weights[name])
    save_file(weights, target / "model.safetensors")
    return target


def _set_first(value: float, count: int):
    return lambda t: t.flatten().index_fill(0, torch.arange(count), value).view_as(t)


@pytest.mark.parametrize(
    ("name", "change", "check", "fragment"),
    [
        ("backbone.model.vision_tower.encoder.layer.0.mlp.fc1.weight", _set_first(1e37, 3), "magnitude", "up to 1e+37"),
        ("action_head.mlp_head.fc1.linear.weight", _set_first(float("nan"), 10), "finite", "(10 of 32768)"),
        ("action_head.transformer_blocks.0.attn.out_proj.weight", lambda t: t[:-1].clone(), "tensors", "(127, 128)"),
    ],
    ids=["1e37", "nan", "shape"],
)
def test_verify_catches_planted_corruption(lerobot_ckpt, tmp_path, name, change, check, fragment):
    bad = _planted(lerobot_ckpt, tmp_path / "bad", name, change)
    report = verify_checkpoint(bad)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert check in failed and fragment in failed[check] and name in failed[check], failed
    assert failed["forward"].startswith("skipped")
    assert verify_checkpoint(lerobot_ckpt).ok


def test_verify_command(lerobot_ckpt, tmp_path):
    bad = _planted(
        lerobot_ckpt,
        tmp_path / "bad",
        "action_head.norm_out.weight",
        lambda t: t.index_fill(0, torch.tensor([1]), 3e38),
    )
    result = subprocess.run(
        [sys.executable, "-m", "evo1cli", "model", "verify", str(bad), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["problems"][0].startswith("magnitude: action_head.norm_out.weight")


def test_verify_flags_stats_wider_than_the_model(lerobot_ckpt, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(lerobot_ckpt, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "action_dim": 3}))
    report = verify_checkpoint(bad)
    assert not report.ok
    assert any("action has 4 dims, the model 3" in p for p in report.problems), report.problems


# ---------------------------------------------------------------------------------------------- export
def test_authors_export_round_trip(authors_ckpt, tmp_path):
    warnings = export_checkpoint(authors_ckpt, "authors", tmp_path / "bf16", dtype=torch.bfloat16)
    original = authors.safe_torch_load(AUTHORS / "checkpoint" / authors.DEEPSPEED_FILE)["module"]
    exported = authors.safe_torch_load(tmp_path / "bf16" / authors.DEEPSPEED_FILE)["module"]
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original), "bit-identical to the release file"
    assert json.loads((tmp_path / "bf16" / "norm_stats.json").read_text()) == json.loads(
        (AUTHORS / "checkpoint" / "norm_stats.json").read_text()
    )
    assert any("keeps 14 LLM layers" in w for w in warnings) is False
    assert any("InternVL3-1B backbone" in w for w in warnings)

    export_checkpoint(authors_ckpt, "authors", tmp_path / "fp32")
    import_checkpoint(tmp_path / "fp32", tmp_path / "back", backbone=str(AUTHORS / "backbone"))
    before, after = load_policy(authors_ckpt), load_policy(tmp_path / "back")
    assert after.config == before.config
    for a, b in zip(authors_actions(before), authors_actions(after), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lerobot_export_round_trip(lerobot_ckpt, tmp_path):
    out = tmp_path / "lerobot"
    warnings = export_checkpoint(lerobot_ckpt, "lerobot", out)
    assert warnings == []  # imported from LeRobot: nothing it cannot express
    fixture = LEROBOT / "pretrained_model"
    ours, theirs = load_file(out / "model.safetensors"), load_file(fixture / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((out / name).read_text()) == json.loads((fixture / name).read_text())
    for name in (
        "policy_preprocessor_step_4_normalizer_processor",
        "policy_postprocessor_step_0_unnormalizer_processor",
    ):
        ours, theirs = load_file(out / f"{name}.safetensors"), load_file(fixture / f"{name}.safetensors")
        assert ours.keys() <= theirs.keys() and {"observation.state.min", "action.max"} <= ours.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    config, original = json.loads((out / "config.json").read_text()), json.loads((fixture / "config.json").read_text())
    assert {k: v for k, v in config.items() if k != "vlm_model_name" and original.get(k) != v} == {}
    vlm = json.loads((out / "vlm" / "config.json").read_text())
    assert Path(config["vlm_model_name"]) == (out / "vlm").resolve() and (out / "vlm" / "model.safetensors").is_file()
    assert (
        vlm["image_seq_length"] == 16
        and len(vlm["text_config"]["layer_types"]) == vlm["text_config"]["num_hidden_layers"]
    )

    back = tmp_path / "back"
    import_checkpoint(out, back)
    before, after = load_policy(lerobot_ckpt), load_policy(back)
    assert after.config == before.config.replace(backbone_path=str((out / "vlm").resolve()))
    np.testing.assert_array_equal(lerobot_actions(before), lerobot_actions(after))


def test_lerobot_export_says_what_lerobot_cannot_express(tmp_path, tiny_config):
    policy = Evo1Model.build(tiny_config.replace(time_index_scale=1000), stats=make_stats())
    save_policy(policy, tmp_path / "ckpt")
    warnings = export_checkpoint(tmp_path / "ckpt", "lerobot", tmp_path / "out", vlm_name="OpenGVLab/InternVL3-1B-hf")
    assert any("floor(t * 1000)" in w for w in warnings)
    assert any("does not clip" in w for w in warnings)
    assert any("camera names unknown" in w for w in warnings)
    assert not (tmp_path / "out" / "vlm").exists()
    save_policy(Evo1Model.build(tiny_config.replace(ff_dim=256), stats=make_stats()), tmp_path / "ff")
    with pytest.raises(Evo1Error, match="ff_dim: is 256; LeRobot's Evo-1 fixes it to 4 x embed_dim = 512"):
        export_checkpoint(tmp_path / "ff", "lerobot", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------------------------------------- format registry
def test_each_format_is_detected_by_its_adapter(lerobot_ckpt):
    assert detect(AUTHORS / "checkpoint") == (authors.FORMAT, AUTHORS / "checkpoint")
    assert detect(LEROBOT) == (lerobot.FORMAT, LEROBOT / "pretrained_model")  # its only checkpoint subdirectory
    assert detect(lerobot_ckpt) == (EVO1, lerobot_ckpt)
    with pytest.raises(Evo1Error, match="nothing to import"):
        import_checkpoint(lerobot_ckpt, lerobot_ckpt.parent / "again")
    assert export_format("authors") is authors.FORMAT
    with pytest.raises(Evo1Error, match=r"^--to: must be one of lerobot, authors, got 'evo1'$"):
        export_format("evo1")


# ---------------------------------------------------------------------------------------------- bad input
def _copy_authors(tmp_path: Path) -> Path:
    target = tmp_path / "release"
    shutil.copytree(AUTHORS / "checkpoint", target)
    return target


def _edit_module(path: Path, edit) -> None:
    data = authors.safe_torch_load(path)
    edit(data["module"])
    torch.save(data, path)


BAD_INPUT = {
    "truncated": (
        lambda d: (d / authors.DEEPSPEED_FILE).write_bytes((d / authors.DEEPSPEED_FILE).read_bytes()[:50000]),
        "mp_rank_00_model_states.pt: truncated or not a torch checkpoint",
    ),
    "pickle needs code": (
        lambda d: torch.save({"module": {}, "args": argparse.Namespace(lr=1)}, d / authors.DEEPSPEED_FILE),
        "mp_rank_00_model_states.pt: refused: unpickling it needs more than tensors",
    ),
    "foreign file": (
        lambda d: torch.save({"state_dict": {"w": torch.zeros(2)}}, d / authors.DEEPSPEED_FILE),
        "mp_rank_00_model_states.pt: no state dict under 'module'",
    ),
    "missing key": (
        lambda d: _edit_module(d / authors.DEEPSPEED_FILE, lambda m: m.pop("action_head.norm_out.bias")),
        "missing tensor action_head.norm_out.bias",
    ),
    "extra key": (
        lambda d: _edit_module(
            d / authors.DEEPSPEED_FILE, lambda m: m.update({"embedder.extra.weight": torch.ones(2)})
        ),
        "unexpected tensor embedder.extra.weight",
    ),
    "wrong shape": (
        lambda d: _edit_module(
            d / authors.DEEPSPEED_FILE,
            lambda m: m.update({"action_head.transformer_blocks.1.norm1.weight": torch.ones(65)}),
        ),
        "tensor action_head.transformer_blocks.1.norm1.weight has shape (65,), the config expects (64,)",
    ),
    "stats of the wrong dims": (
        lambda d: (d / "norm_stats.json").write_text(
            json.dumps(
                {
                    "arm": {
                        "observation.state": {"min": [0.0] * 30, "max": [1.0] * 30},
                        "action": {"min": [0.0], "max": [1.0]},
                    }
                }
            )
        ),
        "norm_stats.json: arm.default.observation.state.min: has 30 dims, more than 24",
    ),
    "unknown layout": (
        lambda d: [p.unlink() for p in d.iterdir()],
        "holds no evo1, authors' or LeRobot Evo-1 checkpoint",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, case):
    spoil, message = BAD_INPUT[case]
    source = _copy_authors(tmp_path)
    spoil(source)
    out = tmp_path / "out"
    with pytest.raises(Evo1Error) as err:
        import_checkpoint(source, out, backbone=str(AUTHORS / "backbone"))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_import_refuses_a_checkpoint_that_fails_verification_unless_forced(tmp_path):
    source = _copy_authors(tmp_path)
    _edit_module(
        source / authors.DEEPSPEED_FILE,
        lambda m: m["embedder.model.vision_model.encoder.layers.0.mlp.fc1.weight"].view(-1)[:4].fill_(1e37),
    )
    with pytest.raises(
        Evo1Error, match=r"fails verification: magnitude: backbone\.model\.vision_tower\.encoder\.layer\.0"
    ):
        import_checkpoint(source, tmp_path / "out", backbone=str(AUTHORS / "backbone"))
    assert not (tmp_path / "out").exists()
    result = import_checkpoint(source, tmp_path / "out", backbone=str(AUTHORS / "backbone"), force=True)
    assert not result.report.ok
    assert import_record(tmp_path / "out")["verified"] is False


# ---------------------------------------------------------------------------------------------- resolver and hub
def test_resolver_imports_once_into_the_cache(tmp_path, monkeypatch, lerobot_ckpt):
    monkeypatch.setenv("EVO1_CACHE", str(tmp_path / "cache"))
    heard: list[str] = []
    assert resolve_checkpoint(lerobot_ckpt, notify=heard.append) == lerobot_ckpt  # evo1: as it is
    first = resolve_checkpoint(LEROBOT / "pretrained_model", notify=heard.append)
    again = resolve_checkpoint(LEROBOT, notify=heard.append)  # the folder above pretrained_model/ names it too
    assert first == again and first.parent == tmp_path / "cache" / "imports"
    assert len(heard) == 1 and str(first) in heard[0]
    with pytest.raises(Evo1Error, match="no such checkpoint directory"):
        resolve_checkpoint(tmp_path / "nowhere")


def _hub_repo(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """A repository in the Hugging Face cache layout: models--ORG--NAME/{refs/main, snapshots/<rev>/...}."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = root / "snapshots" / revision
    for name, source in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snapshot / name)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)


def test_hub_ids_resolve_offline_from_the_cache(tmp_path):
    hub = tmp_path / "hub"
    _hub_repo(hub, "test-org/evo1-authors-small", {p.name: p for p in (AUTHORS / "checkpoint").iterdir()})
    _hub_repo(hub, "test-org/internvl-small-hf", {p.name: p for p in (AUTHORS / "backbone").iterdir()})
    lerobot_files = {f"pretrained_model/{p.name}": p for p in (LEROBOT / "pretrained_model").iterdir()}
    _hub_repo(
        hub,
        "test-org/evo1-lerobot-small",
        {**lerobot_files, **{f"vlm/{p.name}": p for p in (LEROBOT / "vlm").iterdir()}},
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "EVO1_CACHE": str(tmp_path / "evo1")}

    def evo1(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, env=env)

    out = tmp_path / "imported"
    result = evo1(
        "import", "test-org/evo1-authors-small", "--backbone", "test-org/internvl-small-hf", "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verify"]["ok"] is True
    assert import_record(out)["source"] == "test-org/evo1-authors-small"

    result = evo1("model", "inspect", "test-org/evo1-lerobot-small", "--json")  # imported on the fly
    assert result.returncode == 0, result.stderr
    assert "imported test-org/evo1-lerobot-small" in result.stderr
    assert json.loads(result.stdout)["config"]["num_inference_steps"] == 32


def test_an_uncached_hub_id_offline_is_one_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(Evo1Error, match=r"^test-org/no-such-repo: not in the local Hugging Face cache"):
        resolve_checkpoint("test-org/no-such-repo")


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_bench_metaworld_runs_an_imported_release(authors_ckpt, tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "evo1cli", "bench", "metaworld", "--checkpoint", str(authors_ckpt),
         "--tasks", "reach-v3", "--episodes", "1", "--max-steps", "15", "--videos", "0", "--fast-render",
         "--out", str(out), "--json"],
        capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["episodes"] == 1 and info["tasks"]["reach-v3"]["mean_steps"] > 0


@pytest.mark.slow
def test_serving_an_imported_release_to_the_authors_json_protocol(authors_ckpt):
    from conftest import Running
    from websockets.sync.client import connect

    from evo1cli.runtime.policy import chunk_noise

    policy = load_policy(authors_ckpt)
    server = Running(policy, seed=3)
    try:
        observation, _, _ = next(iter(authors_cases()))
        views = [img if img is not None else np.zeros((112, 112, 3), np.uint8) for img in observation.images]
        request = {
            "image": [v[:, :, ::-1].tolist() for v in views],  # BGR, as their clients send it
            "image_mask": [int(img is not None) for img in observation.images],
            "state": np.asarray(observation.state).tolist(),
            "prompt": observation.prompt,
            "action_mask": [1] * 4 + [0] * 20,
        }
        with connect(server.url, max_size=None) as ws:
            ws.send(json.dumps(request))
            reply = np.array(json.loads(ws.recv()))
    finally:
        server.stop()
    noise = chunk_noise((policy.config.horizon, policy.config.action_dim), 3)  # what `--seed 3` fixes
    want = policy.predict([observation], noise=noise[None])[0]
    assert reply.shape == (50, 24) and not reply[:, 4:].any()
    np.testing.assert_allclose(reply[:, :4], want, rtol=1e-5, atol=1e-6)
