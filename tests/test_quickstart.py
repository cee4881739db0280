"""The README's main job end to end, small: collect -> train both stages -> closed-loop evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evo1cli.data.format import load_meta
from evo1cli.model.checkpoint import load_policy
from evo1cli.train.checkpoints import load_trainer_state

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SMALL = ["--set", "stage1.steps=6", "--set", "stage2.steps=3", "--set", "train.warmup_steps=2",
         "--set", "stage2.warmup_steps=1", "--set", "train.batch_size=4"]  # fmt: skip


def run_quickstart(tmp_path: Path, episodes: int, *options: str, cwd: Path | None = None) -> dict:
    cmd = [
        sys.executable, "-m", "evo1cli", "quickstart", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "data"),
        "--episodes", str(episodes), *SMALL, *options, "--json",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_quickstarts_are_recipes_that_name_their_tasks_demonstrations_and_evaluation():
    from evo1cli.quickstart import SAME_SCENE, plan, swaps
    from evo1cli.sim.metaworld_tasks import MT10

    single = plan(RECIPES / "quickstart.yaml", [])
    assert single.tasks == ["button-press-topdown-v3"] and single.demonstrations == 40 and swaps(single.tasks) == {}
    p = single.protocol
    assert (p.suite, p.episodes, p.seed, p.action_steps, p.max_steps) == ("metaworld", 20, 4042, 15, 400)
    assert p.options == {"variations": "per-seed", "fast_render": True}
    assert (single.recipe.output, single.data) == (Path("runs/quickstart"), Path("data/quickstart"))

    mt10 = plan(RECIPES / "mt10-tiny.yaml", [])
    assert mt10.tasks == list(MT10) and mt10.demonstrations == 15 and swaps(mt10.tasks) == SAME_SCENE
    p = mt10.protocol
    assert (p.episodes, p.seed, p.action_steps, p.max_steps) == (10, 4042, 15, 400)
    assert p.options == {"variations": "authors", "fast_render": True}
    assert (mt10.recipe.output, mt10.data) == (Path("runs/mt10"), Path("data/mt10"))

    # the command's options replace the recipe's figures, and the dataset path reaches the training data
    changed = plan(RECIPES / "quickstart.yaml", [], Path("o"), Path("d"), 3, 2)
    assert (changed.recipe.output, changed.data, changed.demonstrations, changed.protocol.episodes) == (
        Path("o"), Path("d"), 3, 2,
    )  # fmt: skip
    assert [g.path for g in changed.recipe.data.groups] == [Path("d")]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluation.variations=sideways", "evaluation.variations: must be one of authors, per-seed"),
        ("evaluation.tasks=nope-v3", "evaluation.tasks: unknown Meta-World task 'nope-v3'"),
        ("evaluation.speed=2", "evaluation.speed: not a setting of metaworld"),
        ("evaluation.seed=x", "evaluation.seed: must be an integer"),
        ("evaluation.suite=libero", "evaluation.suite: the quickstart collects Meta-World"),
        ("evaluation=null", "evaluation: missing"),
    ],
)
def test_a_bad_evaluation_names_the_recipe_and_key(override, message):
    from evo1cli.errors import Evo1Error
    from evo1cli.quickstart import plan

    with pytest.raises(Evo1Error, match=f"quickstart.yaml: {message}"):
        plan(RECIPES / "quickstart.yaml", [override])


@pytest.mark.slow
def test_quickstart_collects_trains_and_evaluates(tmp_path):
    report = run_quickstart(tmp_path, 2, "--recipe", str(RECIPES / "quickstart.yaml"), "--eval-episodes", "2")
    assert report["tasks"] == ["button-press-topdown-v3"] and report["episodes"] == 2
    assert report["eval_episodes"] == 2 and len(report["episodes_detail"]) == 2
    assert report["success_rate"] == report["successes"] / 2
    for episode in report["episodes_detail"]:
        assert episode["seed"] >= 4042 and 0 < episode["steps"] <= 400 and episode["queries"] >= 1
        assert episode["success"] or episode["steps"] == 400
    checkpoint = Path(report["checkpoint"])
    assert checkpoint.parent.parent.name == "stage2"
    assert load_trainer_state(checkpoint).step == 3
    policy = load_policy(checkpoint)
    assert list(policy.stats) == [("metaworld", "button-press-topdown")] and policy.config.image_size == 112
    meta = load_meta(tmp_path / "data")
    assert meta.features["observation.images.corner2"]["shape"][:2] == [112, 112]

    again = run_quickstart(
        tmp_path, 3, "--recipe", str(RECIPES / "quickstart.yaml"), "--eval-episodes", "2"
    )  # one more episode is appended; finished training is kept
    assert again["episodes"] == 3 and again["checkpoint"] == report["checkpoint"]
    assert [e["steps"] for e in again["episodes_detail"]] == [e["steps"] for e in report["episodes_detail"]]


@pytest.mark.slow
def test_mt10_quickstart_from_an_empty_directory(tmp_path):
    """The MT10 path, short: one demonstration per task, a few steps, one episode per task and per swap."""
    from evo1cli.quickstart import SAME_SCENE
    from evo1cli.sim.metaworld_tasks import MT10, PROMPTS

    empty = tmp_path / "empty"
    empty.mkdir()
    fast = ["--set", "model.num_inference_steps=2", "--set", "checkpoint.every=100"]
    report = run_quickstart(tmp_path, 1, "--suite", "mt10", "--eval-episodes", "1", *fast, cwd=empty)
    assert report["suite"] == "mt10" and report["tasks"] == list(MT10) and report["episodes"] == 10
    meta = load_meta(tmp_path / "data")
    assert sorted(e.extra["task"] for e in meta.episodes) == sorted(MT10) and len(meta.tasks) == 10
    policy = load_policy(Path(report["checkpoint"]))
    assert list(policy.stats) == [("metaworld", "mt10")] and policy.config.horizon == 16

    summary = report["summary"]
    assert list(summary["tasks"]) == list(MT10) and summary["overall"]["episodes"] == 10
    assert report["success_rate"] == summary["overall"]["mean_over_tasks"]
    info = json.loads((tmp_path / "run" / "evaluate" / "eval_info.json").read_text())
    assert info["protocol"]["variations"] == "authors" and info["protocol"]["max_steps"] == 400
    assert info["protocol"]["action_steps"] == 15 and all(e["seed"] == 4042 for e in info["episodes"])

    assert set(report["swap"]) == set(SAME_SCENE) and len(report["swap_detail"]) == 4
    for task, row in report["swap"].items():
        assert row["asked"] == PROMPTS[SAME_SCENE[task]] and row["episodes"] == 1
    swap = json.loads((tmp_path / "run" / "swap" / "eval_info.json").read_text())
    assert swap["protocol"]["prompts"] == {t: PROMPTS[other] for t, other in SAME_SCENE.items()}
    assert set(report["seconds"]) == {"collect", "train", "evaluate", "swap"} == set(report["cpu_seconds"])


@pytest.mark.slow
def test_suite_collection_tops_up_each_task(tmp_path):
    from evo1cli.quickstart import collect_tasks, episodes_per_task

    tasks = ["reach-v3", "drawer-close-v3"]
    collect_tasks(tmp_path / "d", tasks, 1, 32, None)
    assert episodes_per_task(tmp_path / "d") == dict.fromkeys(tasks, 1)
    seen: list[tuple[int, int]] = []
    collect_tasks(tmp_path / "d", [*tasks, "window-open-v3"], 2, 32, lambda _, done, total: seen.append((done, total)))
    assert episodes_per_task(tmp_path / "d") == {"reach-v3": 2, "drawer-close-v3": 2, "window-open-v3": 2}
    assert seen[0] == (3, 6) and seen[-1] == (6, 6)  # progress counts what was there
    seeds = [e.extra["seed"] for e in load_meta(tmp_path / "d").episodes]
    assert len(set(seeds)) == len(seeds)  # every demonstration is a different episode
