"""`evo1 collect --robot metaworld`: real simulator, real files; killed with SIGKILL mid-collection."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset, collate
from evo1cli.data.reader import read_episode
from evo1cli.data.validate import validate
from evo1cli.data.video import FrameReader

pytestmark = pytest.mark.slow
CORNER2 = "observation.images.corner2"


def evo1_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "evo1cli", *args]


def collect_args(out: Path, episodes: int, *extra: str) -> list[str]:
    return evo1_args("collect", "--robot", "metaworld", "--task", "reach-v3", "--episodes", str(episodes),
                     "--resolution", "64", "--out", str(out), *extra)  # fmt: skip


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "reach"
    result = subprocess.run(collect_args(out, 2, "--json"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kept"] == 2 and summary["tasks"] == ["reach-v3"]
    return out


def test_collected_dataset_validates_and_describes_itself(collected):
    meta, problems = validate(collected, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    info = subprocess.run(evo1_args("dataset", "info", str(collected), "--json"), capture_output=True, text=True)
    described = json.loads(info.stdout)
    assert described["episodes"] == 2 and described["fps"] == 80
    assert described["cameras"] == ["observation.images.corner2"]
    assert described["features"]["observation.state"]["shape"] == [8]
    assert described["features"]["action"]["shape"] == [4]
    assert described["tasks"] == ["Reach a goal position"]  # Table 3's prompt
    seeds = [ep.extra["seed"] for ep in meta.episodes]
    assert len(set(seeds)) == 2 and all(ep.extra["success"] and ep.extra["task"] == "reach-v3" for ep in meta.episodes)


def test_episodes_replay_from_their_recorded_seed_and_variation(collected):
    from evo1cli.sim.metaworld import MetaWorldEnv, ScriptedExpert

    meta = load_meta(collected)
    episode = meta.episodes[1]
    table = read_episode(meta, 1)
    env = MetaWorldEnv("reach-v3", episode.extra["seed"], episode.extra["variation"], image_size=64)
    try:
        obs = env.reset()
        expert = ScriptedExpert("reach-v3")
        for t in range(3):
            assert np.allclose(table.state[t], obs[:8], atol=1e-6)
            assert np.allclose(table.action[t], expert(obs), atol=1e-6)
            obs, _, _ = env.step(expert(obs))
    finally:
        env.close()
    assert np.all(np.abs(table.action) <= 1.0)


def test_collected_dataset_trains_through_the_loader(collected, tiny_config):
    from evo1cli.model.policy import Evo1Model

    config = tiny_config.replace(horizon=8)
    windows = WindowDataset.from_config([DataSource(collected, "metaworld_sawyer")], config, augment=True)
    assert len(windows) == load_meta(collected).total_frames
    loader = torch.utils.data.DataLoader(windows, batch_size=4, shuffle=True, collate_fn=collate, num_workers=1)
    policy = Evo1Model.build(config, stats=windows.stats)
    optimizer = torch.optim.AdamW(policy.action_head.parameters(), lr=1e-4)
    batch = next(iter(loader))
    assert batch.pixel_values.shape == (4, 3, config.image_size, config.image_size)
    loss = policy(batch, torch.Generator().manual_seed(0))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


def _committed_files(root: Path, episodes: int) -> dict[str, str]:
    """v2.1: the sha256 of each committed episode's own files (they never change once committed); v3.0, where
    episodes share files that each commit rewrites: of each committed episode's rows and decoded frames."""
    meta = load_meta(root)
    files = {}
    for e in range(episodes):
        if meta.version == "v3.0":
            table = read_episode(meta, e)
            reader, span = FrameReader(), meta.episodes[e].videos[CORNER2]
            pixels = b"".join(
                reader.read(meta.video_file(CORNER2, e), span.start + t).tobytes() for t in table.timestamp
            )
            for name, data in (("table", table.state.tobytes() + table.action.tobytes()), ("frames", pixels)):
                files[f"{e}/{name}"] = hashlib.sha256(data).hexdigest()
            continue
        for path in [root / f"data/chunk-000/episode_{e:06d}.parquet", *root.glob(f"videos/*/*/episode_{e:06d}.mp4")]:
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _episodes(root: Path) -> int:
    try:
        return json.loads((root / "meta/info.json").read_text())["total_episodes"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.parametrize("layout, attempts", [("v2.1", 3), ("v3.0", 2)])
def test_kill_9_during_collection_loses_only_the_unfinished_episode(tmp_path, layout, attempts):
    out = tmp_path / "reach"
    rng = np.random.default_rng(0)
    committed: dict[str, str] = {}
    for attempt in range(attempts):
        process = subprocess.Popen(
            collect_args(out, 30, "--format", layout), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        start, before = time.monotonic(), _episodes(out)
        while _episodes(out) < before + 1 and time.monotonic() - start < 300:  # patient on a loaded machine
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 2.5)))  # somewhere inside the next episode, or its commit
        process.send_signal(signal.SIGKILL)
        process.wait()
        meta, problems = validate(out, decode=True)
        assert not problems.errors, (attempt, [str(p) for p in problems.errors])
        assert len(meta.episodes) >= before + 1 and meta.version == layout
        now = _committed_files(out, len(meta.episodes))
        assert {k: now[k] for k in committed} == committed  # finished episodes are untouched
        committed = now
    total = len(load_meta(out).episodes)
    result = subprocess.run(collect_args(out, 1), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    meta, problems = validate(out, decode=True)
    assert not problems.items and len(meta.episodes) == total + 1  # the next collect appends
    assert _committed_files(out, total) == committed
    if layout == "v3.0":
        assert len({ep.data for ep in meta.episodes}) == 1  # all in one shared file
        refused = subprocess.run(collect_args(out, 1, "--format", "v2.1"), capture_output=True, text=True)
        assert refused.returncode == 1 and "is a LeRobot v3.0 dataset, not v2.1" in refused.stderr


def test_ctrl_c_keeps_finished_episodes(tmp_path):
    out = tmp_path / "reach"
    process = subprocess.Popen(collect_args(out, 30), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while _episodes(out) < 1 and time.monotonic() - start < 300:  # patient on a loaded machine
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr and "interrupted" in stdout
    meta, problems = validate(out)
    assert not problems.items and len(meta.episodes) >= 1 and not (out / ".evo1-staging").exists()


def test_bad_options_are_one_line_errors(tmp_path):
    for args, expected in (
        (evo1_args("collect", "--robot", "metaworld", "--task", "fly-v3", "--out", str(tmp_path / "x")), "task"),
        (evo1_args("collect", "--robot", "xarm7", "--out", str(tmp_path / "x")), "--robot"),
    ):
        result = subprocess.run(args, capture_output=True, text=True)
        assert result.returncode == 1 and result.stderr.startswith("error: ") and expected in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()
