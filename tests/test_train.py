"""Training: recipes, the optimizer and schedule, both stages, checkpoints, exact resume, DDP, failures."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CAMERA, make_dataset

from evo1cli.errors import Evo1Error
from evo1cli.model.checkpoint import load_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.policy import Evo1Model, Observation
from evo1cli.train.checkpoints import last_checkpoint, load_trainer_state, step_checkpoints
from evo1cli.train.metrics import read_metrics
from evo1cli.train.optim import param_groups, warmup_cosine
from evo1cli.train.recipe import Evaluation, load_recipe, parse_recipe
from evo1cli.train.sampler import StepBatchSampler
from evo1cli.train.trainer import TrainingStopped, train

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
EVO1 = [sys.executable, "-m", "evo1cli"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "toy"
    make_dataset(root, lengths=(14, 11, 9), size=32)
    return root


def recipe_dict(dataset: Path, out: Path, **changes) -> dict:
    """A recipe small enough to train in seconds: the tiny model at 32 px, horizon 8."""
    raw = {
        "name": "test",
        "output": str(out),
        "seed": 3,
        "model": {"preset": "tiny", "image_size": 32, "horizon": 8, "dropout": 0.1},
        "data": {
            "normalization": "bounds",
            "augmentation": True,
            "num_workers": 0,
            "groups": {"toy": {"toy": {"path": str(dataset), "views": [CAMERA]}}},
        },
        "train": {"batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "noise_draws": 2},
        "stage1": {"steps": 6},
        "stage2": {"steps": 4, "lr": 1e-4},
        "checkpoint": {"every": 3},
        "logging": {"every": 1, "tensorboard": True},
    }
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return raw


def write_recipe(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_cli(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EVO1, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


# ---------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", ["metaworld", "libero", "robotwin", "xarm6", "so100"])
def test_shipped_full_size_recipes_have_the_papers_settings(name):
    recipe = load_recipe(RECIPES / f"{name}.yaml", check_paths=False)
    assert recipe.model == Evo1Config.preset("internvl3-1b", dropout=0.2, normalization="bounds")
    for stage in (recipe.stage1, recipe.stage2):
        assert (stage.lr, stage.betas, stage.weight_decay) == (1e-5, (0.9, 0.999), 1e-3)
        assert (stage.warmup_steps, stage.grad_clip, stage.batch_size) == (1000, 1.0, 16)
    assert recipe.precision == "auto" and recipe.data.augmentation
    assert recipe.stage2.steps > recipe.stage1.steps
    if name == "metaworld":
        assert (recipe.stage1.steps, recipe.stage2.steps) == (10_000, 65_000)


def test_quickstart_recipe_is_the_tiny_model():
    recipe = load_recipe(RECIPES / "quickstart.yaml", check_paths=False)
    assert recipe.model.backbone == "tiny"
    assert [g.path for g in recipe.data.groups] == [Path("data/quickstart")]


def test_a_recipe_can_name_its_evaluation_and_collection():
    raw = yaml.safe_load((RECIPES / "quickstart.yaml").read_text())
    recipe = parse_recipe(raw, check_paths=False)
    assert recipe.collect is not None and recipe.collect.episodes == 40
    assert recipe.evaluation == Evaluation(
        "metaworld", "button-press-topdown-v3", {"episodes": 20, "variations": "per-seed", "fast_render": True}
    )
    raw["evaluation"]["tasks"] = ["reach-v3", "push-v3"]  # a list reads as --tasks does: a comma list
    assert parse_recipe(raw, check_paths=False).evaluation.tasks == "reach-v3,push-v3"
    plain = parse_recipe({k: v for k, v in raw.items() if k not in ("collect", "evaluation")}, check_paths=False)
    assert plain.evaluation is None and plain.collect is None


BAD_EVALUATION = [
    ({"tasks": "mt10"}, "evaluation.suite", "missing"),
    ({"suite": "metaworld", "tasks": 3}, "evaluation.tasks", "must be a string or a list"),
    ({"suite": "metaworld", "episodes": 0}, "evaluation.episodes", "must be >= 1"),
    ({"suite": "metaworld", "episodes": "ten"}, "evaluation.episodes", "must be an integer"),
    ({"suite": "metaworld", "variations": ["a"]}, "evaluation.variations", "must be a single value"),
]


@pytest.mark.parametrize(("evaluation", "field", "message"), BAD_EVALUATION, ids=[b[1] for b in BAD_EVALUATION])
def test_bad_evaluation_names_the_file_and_key(tmp_path, evaluation, field, message):
    raw = yaml.safe_load((RECIPES / "quickstart.yaml").read_text())
    raw["evaluation"] = evaluation
    path = write_recipe(tmp_path / "bad.yaml", raw)
    with pytest.raises(Evo1Error) as err:
        load_recipe(path, check_paths=False)
    assert err.value.path == str(path) and err.value.field == field and message in err.value.message


@pytest.mark.parametrize(("collect", "message"), [({"episodes": 0}, "must be >= 1"), ({}, "missing")])
def test_bad_collection_names_the_file_and_key(tmp_path, collect, message):
    raw = {**yaml.safe_load((RECIPES / "quickstart.yaml").read_text()), "collect": collect}
    path = write_recipe(tmp_path / "bad.yaml", raw)
    with pytest.raises(Evo1Error) as err:
        load_recipe(path, check_paths=False)
    assert err.value.path == str(path) and err.value.field == "collect.episodes" and message in err.value.message


def test_overrides_and_float_strings(dataset, tmp_path):
    path = write_recipe(tmp_path / "r.yaml", recipe_dict(dataset, tmp_path / "out"))
    recipe = load_recipe(path, ["stage1.steps=50", "train.lr=1e-5", "model.dropout=0.3", "stage2.grad_clip=null"])
    assert recipe.stage1.steps == 50 and recipe.stage1.lr == 1e-5 and recipe.stage2.lr == 1e-4
    assert recipe.model.dropout == 0.3 and recipe.stage2.grad_clip is None
    assert recipe.raw["stage1"]["steps"] == 50  # the run's copy records what ran


BAD = [
    ({"epochs": 3}, "epochs", "unknown key"),
    ({"stage1.stepz": 3}, "stage1.stepz", "unknown key"),
    ({"train.lr": "fast"}, "train.lr", "must be a number"),
    ({"stage1.steps": 2.5}, "stage1.steps", "must be an integer"),
    ({"train.warmup_steps": 100}, "train.warmup_steps", "between 0 and steps"),
    ({"model.hidden": 3}, "model.hidden", "unknown key"),
    ({"model.preset": "huge"}, "model.preset", "unknown preset"),
    ({"model.horizon": 0}, "model.horizon", "must be >= 1"),
    ({"data.normalization": "minmax"}, "data.normalization", "must be one of"),
    ({"data.state_noise": -0.1}, "data.state_noise", "must be >= 0"),
    ({"data.augmentation": "yes"}, "data.augmentation", "true or false"),
    ({"precision": "fp8"}, "precision", "must be one of"),
    ({"logging.every": 0}, "logging.every", "must be >= 1"),
    ({"train.betas": [0.9]}, "train.betas", "two numbers"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD, ids=[b[1] for b in BAD])
def test_bad_recipes_name_the_file_and_key(dataset, tmp_path, change, field, message):
    raw = recipe_dict(dataset, tmp_path / "out")
    key, value = next(iter(change.items()))
    node = raw
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    path = write_recipe(tmp_path / "bad.yaml", raw)
    with pytest.raises(Evo1Error) as err:
        load_recipe(path)
    assert err.value.path == str(path) and err.value.field == field and message in err.value.message


def test_missing_dataset_path_is_named(dataset, tmp_path):
    raw = recipe_dict(dataset, tmp_path / "out")
    raw["data"]["groups"]["toy"]["toy"]["path"] = str(tmp_path / "nowhere")
    with pytest.raises(Evo1Error, match=r"data\.groups\.toy\.toy\.path: no dataset directory"):
        parse_recipe(raw, tmp_path / "r.yaml")


@pytest.mark.parametrize(
    ("text", "args", "expect"),
    [
        ("name: [unclosed", [], "not valid YAML at line 1"),
        ("name: x\nstage3: {}\n", [], "stage3: unknown key"),
        (None, ["--set", "stage1.steps=abc"], "stage1.steps: must be an integer"),
        (None, ["--set", "datasets=3"], "datasets: unknown key"),
        (None, ["--stage", "3"], "--stage: must be 1, 2 or all"),
    ],
)
def test_cli_rejects_bad_recipes_in_one_line_and_writes_nothing(dataset, tmp_path, text, args, expect):
    out = tmp_path / "out"
    path = tmp_path / "r.yaml"
    if text is None:
        write_recipe(path, recipe_dict(dataset, out))
    else:
        path.write_text(text)
    result = run_cli("train", "--recipe", path, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


# ---------------------------------------------------------------------------------------------- padded widths
def test_a_model_at_the_datasets_native_width_trains_and_predicts(dataset, tmp_path):
    raw = recipe_dict(dataset, tmp_path / "run", **{"model.state_dim": 8, "model.action_dim": 4, "stage1.steps": 3})
    result = train(parse_recipe(raw), stages=(1,))[0]
    policy = load_policy(result.checkpoint)
    assert (policy.config.state_dim, policy.config.action_dim) == (8, 4)  # the checkpoint records its widths
    assert policy.action_head.state_encoder.fc1.linear.in_features == 8
    obs = Observation([torch.zeros(32, 32, 3, dtype=torch.uint8).numpy()], "reach the goal", [0.0] * 8)
    assert policy.predict([obs])[0].shape == (8, 4)


def test_a_dataset_wider_than_the_model_is_refused_in_one_line_before_anything_is_written(dataset, tmp_path):
    out = tmp_path / "out"
    path = write_recipe(tmp_path / "r.yaml", recipe_dict(dataset, out, **{"model.action_dim": 2}))
    expect = f"{dataset / 'meta/info.json'}: features.action.shape: 4 dims, more than the model's action_dim 2"
    for args in (["--check"], []):
        result = run_cli("train", "--recipe", path, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and expect in lines[0], result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- optimisation
def test_no_decay_groups_and_frozen_parameters(tiny_policy):
    tiny_policy.freeze_backbone(True)
    decay, no_decay = param_groups(tiny_policy, 0.01)
    names = {id(p): n for n, p in tiny_policy.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    trainable = {n for n, p in tiny_policy.named_parameters() if p.requires_grad}
    grouped = {names[id(p)] for p in decay["params"] + no_decay["params"]}
    assert grouped == trainable and all(n.startswith("action_head.") for n in grouped)
    for p in no_decay["params"]:
        n = names[id(p)]
        assert p.ndim == 1 or n.endswith("bias") or "norm" in n
    assert all(p.ndim >= 2 and "norm" not in names[id(p)] for p in decay["params"])
    assert any(names[id(p)] == "action_head.norm_out.weight" for p in no_decay["params"])


def test_warmup_then_cosine():
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)  # the first update is not lr = 0
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(5, 0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_step_sampler_is_a_function_of_the_step():
    weights = torch.tensor([0.0, 1.0, 1.0, 2.0])
    full = list(StepBatchSampler(weights, 5, seed=1, stage=1, accumulation=2, start=0, end=6))
    tail = list(StepBatchSampler(weights, 5, seed=1, stage=1, accumulation=2, start=4, end=6))
    assert len(full) == 12 and tail == full[8:]
    other_rank = list(StepBatchSampler(weights, 5, seed=1, stage=1, rank=1, accumulation=2, start=0, end=6))
    assert other_rank != full
    windows = [w for batch in StepBatchSampler(weights, 100, 0, 1, end=20) for w, _ in batch]
    counts = torch.bincount(torch.tensor(windows), minlength=4)
    assert counts[0] == 0 and 0.4 < counts[3] / (counts[1] + counts[2]) < 0.6 * 2


# ---------------------------------------------------------------------------------------------- stages
def test_two_stages_freeze_then_train_everything(dataset, tmp_path):
    recipe = parse_recipe(recipe_dict(dataset, tmp_path / "run"), tmp_path / "r.yaml")
    events = []
    initial = Evo1Model.build(recipe.model)
    results = train(recipe, listener=events.append)
    assert [r.steps for r in results] == [6, 4]

    one = load_policy(results[0].checkpoint)
    two = load_policy(results[1].checkpoint)
    for name, tensor in initial.backbone.state_dict().items():  # stage 1 never touches the backbone
        assert torch.equal(one.backbone.state_dict()[name], tensor), name
    assert not torch.equal(one.action_head.seq_pool_proj.weight, initial.action_head.seq_pool_proj.weight)
    changed = [n for n, t in two.backbone.state_dict().items() if not torch.equal(t, one.backbone.state_dict()[n])]
    assert changed  # stage 2 trains the backbone too

    starts = {e.stage: e.data for e in events if e.kind == "start"}
    assert starts[1]["trainable"] == sum(p.numel() for p in initial.action_head.parameters())
    assert starts[2]["trainable"] == starts[2]["parameters"]
    assert starts[1]["effective_batch"] == 4 and starts[1]["windows"] == 14 + 11 + 9

    state2 = load_trainer_state(results[1].checkpoint)
    assert (state2.stage, state2.step, state2.steps) == (2, 4, 4)
    opt_state = torch.load(results[1].checkpoint / "training_state" / "state.pt", weights_only=True)
    assert opt_state["optimizer"]["state"][0]["step"].item() == 4  # a fresh optimizer in stage 2
    assert opt_state["scheduler"]["last_epoch"] == 4

    # every checkpoint is a usable policy with the dataset's stats inside
    obs = Observation([torch.zeros(32, 32, 3, dtype=torch.uint8).numpy()], "reach the goal", [0.0] * 8)
    assert two.predict([obs])[0].shape == (8, 4)
    assert list(two.stats) == [("toy", "toy")]
    stage1_dir = recipe.output / "stage1"
    assert [p.name for p in step_checkpoints(stage1_dir)] == ["000003", "000006"]
    assert last_checkpoint(stage1_dir) == results[0].checkpoint
    rows = read_metrics(stage1_dir)
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[0]["lr"] == pytest.approx(1e-3)  # warm-up of 2: 1/2, then full
    assert list((stage1_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert yaml.safe_load((recipe.output / "recipe.yaml").read_text()) == recipe.raw

    with pytest.raises(Evo1Error, match="already has checkpoints"):
        train(recipe)  # never overwrites a run without --resume
    again = train(recipe, resume=True)  # finished stages are not redone
    assert [r.checkpoint for r in again] == [r.checkpoint for r in results]


def test_keep_prunes_old_checkpoints(dataset, tmp_path):
    raw = recipe_dict(dataset, tmp_path / "run", **{"checkpoint.every": 1, "checkpoint.keep": 2})
    train(parse_recipe(raw), stages=(1,))
    assert [p.name for p in step_checkpoints(tmp_path / "run" / "stage1")] == ["000005", "000006"]


def test_wandb_asked_for_but_missing_fails_before_writing(dataset, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    recipe = parse_recipe(recipe_dict(dataset, tmp_path / "run", **{"logging.wandb": True}), tmp_path / "r.yaml")
    with pytest.raises(Evo1Error, match=r"r\.yaml: logging\.wandb: wandb is not installed"):
        train(recipe)
    assert not (tmp_path / "run").exists()


def test_stage_two_needs_a_finished_stage_one(dataset, tmp_path):
    recipe = parse_recipe(recipe_dict(dataset, tmp_path / "run"))
    with pytest.raises(Evo1Error, match="run --stage 1 first"):
        train(recipe, stages=(2,))


def test_gradient_checkpointing_gives_the_same_gradients(dataset, tmp_path):
    from evo1cli.data.loader import collate
    from evo1cli.train.trainer import window_dataset

    recipe = parse_recipe(recipe_dict(dataset, tmp_path / "run"))
    ds = window_dataset(recipe)
    batch = collate([ds[(i, i)] for i in range(4)])
    grads, layer_calls = [], []
    for checkpointing in (False, True):
        policy = Evo1Model.build(recipe.model.replace(dropout=0.0))
        policy.stats = ds.stats
        if checkpointing:
            policy.backbone.enable_gradient_checkpointing()
        calls: list[int] = []
        attention = policy.backbone.model.language_model.layers[0].self_attn
        attention.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        policy.train()
        policy(batch, torch.Generator().manual_seed(0)).backward()
        grads.append({n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None})
        layer_calls.append(len(calls))
    assert layer_calls == [1, 2]  # checkpointed: the layer runs again in backward
    assert grads[0].keys() == grads[1].keys()
    assert any(n.startswith("backbone.") for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_non_finite_steps_are_skipped_then_training_stops(dataset, tmp_path, monkeypatch):
    raw = recipe_dict(dataset, tmp_path / "run", max_nonfinite=3, **{"stage1.steps": 10, "checkpoint.every": 100})
    recipe = parse_recipe(raw)
    real_forward = Evo1Model.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        calls["n"] += 1
        loss = real_forward(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] in (2, 5, 6, 7) else loss

    monkeypatch.setattr(Evo1Model, "forward", forward)
    events = []
    with pytest.raises(TrainingStopped, match="3 steps in a row") as err:
        train(recipe, stages=(1,), listener=events.append)
    assert "000007" in str(err.value)
    skipped = [e.data["step"] for e in events if e.kind == "skip"]
    assert skipped == [2, 5, 6, 7]
    rows = read_metrics(tmp_path / "run" / "stage1")
    assert [r["step"] for r in rows if r.get("event") == "nonfinite"] == [2, 5, 6, 7]
    assert all(math.isfinite(r["loss"]) for r in rows if "event" not in r)
    state = load_trainer_state(tmp_path / "run" / "stage1" / "checkpoints" / "000007")
    assert (state.step, state.skipped, state.nonfinite_streak) == (7, 4, 3)
    monkeypatch.setattr(Evo1Model, "forward", real_forward)  # the saved weights are the last good ones
    policy = load_policy(tmp_path / "run" / "stage1" / "checkpoints" / "000007")
    assert all(torch.isfinite(p).all() for p in policy.parameters())


# ---------------------------------------------------------------------------------------------- processes
def _losses(stage_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(stage_dir) if "event" not in r}


@pytest.mark.slow
def test_resume_after_kill_repeats_the_uninterrupted_run(dataset, tmp_path):
    """kill -9 mid-run, then --resume: every logged loss equals the uninterrupted run's, bit for bit."""
    changes = {"stage1.steps": 40, "stage2.steps": 6, "checkpoint.every": 4, "data.num_workers": 2}
    reference = write_recipe(tmp_path / "ref.yaml", recipe_dict(dataset, tmp_path / "ref", **changes))
    result = run_cli("train", "--recipe", reference)
    assert result.returncode == 0, result.stderr

    killed = write_recipe(tmp_path / "kill.yaml", recipe_dict(dataset, tmp_path / "kill", **changes))
    stage1 = tmp_path / "kill" / "stage1"
    proc = subprocess.Popen([*EVO1, "train", "--recipe", str(killed)], stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while max(_losses(stage1), default=0) < 10 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.wait()
    steps_before = max(_losses(stage1))
    assert 10 <= steps_before < 40, "the kill should land mid-stage"
    assert last_checkpoint(stage1).name <= f"{steps_before:06d}"

    resumed = run_cli("train", "--recipe", killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    for stage in ("stage1", "stage2"):
        ref, got = _losses(tmp_path / "ref" / stage), _losses(tmp_path / "kill" / stage)
        assert sorted(got) == sorted(ref)
        assert got == ref, stage  # exactly equal, not approximately
    a = load_policy(tmp_path / "ref" / "stage2" / "checkpoints" / "last").state_dict()
    b = load_policy(tmp_path / "kill" / "stage2" / "checkpoints" / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(dataset, tmp_path):
    path = write_recipe(
        tmp_path / "r.yaml", recipe_dict(dataset, tmp_path / "run", **{"stage1.steps": 400, "checkpoint.every": 1000})
    )
    proc = subprocess.Popen(
        [*EVO1, "train", "--recipe", str(path), "--stage", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    metrics = tmp_path / "run" / "stage1" / "metrics.jsonl"
    deadline = time.time() + 300
    while (not metrics.exists() or not metrics.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted at step" in stdout and "Traceback" not in stderr
    saved = last_checkpoint(tmp_path / "run" / "stage1")
    state = load_trainer_state(saved)
    assert 1 <= state.step < 400 and saved.name == f"{state.step:06d}"
    load_policy(saved)


@pytest.mark.slow
def test_two_process_ddp_with_gloo(dataset, tmp_path):
    path = write_recipe(
        tmp_path / "r.yaml", recipe_dict(dataset, tmp_path / "run", **{"stage1.steps": 4, "stage2.steps": 2})
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "evo1cli", "train", "--recipe", str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "effective batch 8 = 4 per process x 2 process(es) x 1 accumulation" in result.stdout
    assert result.stdout.count("stage 1: done") == 1  # the main process reports, once
    for stage, steps in (("stage1", 4), ("stage2", 2)):
        state = load_trainer_state(tmp_path / "run" / stage / "checkpoints" / "last")
        assert (state.world_size, state.step) == (2, steps)
        assert [r["step"] for r in read_metrics(tmp_path / "run" / stage)] == list(range(1, steps + 1))
    load_policy(tmp_path / "run" / "stage2" / "checkpoints" / "last")
