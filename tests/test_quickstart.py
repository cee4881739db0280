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

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"
SMALL = ["--set", "stage1.steps=6", "--set", "stage2.steps=3", "--set", "train.warmup_steps=2",
         "--set", "stage2.warmup_steps=1", "--set", "train.batch_size=4"]  # fmt: skip


def run_quickstart(tmp_path: Path, episodes: int) -> dict:
    cmd = [
        sys.executable, "-m", "evo1cli", "quickstart", "--recipe", str(RECIPE), "--out", str(tmp_path / "run"),
        "--data", str(tmp_path / "data"), "--episodes", str(episodes), "--eval-episodes", "2", *SMALL, "--json",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.slow
def test_quickstart_collects_trains_and_evaluates(tmp_path):
    report = run_quickstart(tmp_path, episodes=2)
    assert report["task"] == "button-press-topdown-v3" and report["episodes"] == 2
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

    again = run_quickstart(tmp_path, episodes=3)  # one more episode is appended; finished training is kept
    assert again["episodes"] == 3 and again["checkpoint"] == report["checkpoint"]
    assert [e["steps"] for e in again["episodes_detail"]] == [e["steps"] for e in report["episodes_detail"]]
