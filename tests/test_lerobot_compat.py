"""evo1's v2.1 files against LeRobot 0.3.3: field by field against a dataset LeRobot wrote, and loaded by
LeRobot's own `LeRobotDataset` (in a subprocess with the torchvision stand-in of tests/compat), including a
v3.0 dataset LeRobot 0.6.1 wrote, converted to v2.1 by evo1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import CAMERA, frame_value, make_dataset

from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset
from evo1cli.data.validate import validate
from evo1cli.data.video import FrameReader, probe

LEROBOT_DATASET = Path(__file__).parent / "fixtures" / "lerobot033_v21"  # written by LeRobot 0.3.3 itself
LEROBOT_V30 = Path(__file__).parent / "fixtures" / "lerobot061_v30" / "dataset"  # written by LeRobot 0.6.1
COMPAT = Path(__file__).parent / "compat"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    root = tmp_path_factory.mktemp("ours") / "ds"
    make_dataset(root, lengths=(12, 9), size=32)
    return root


def test_info_json_matches_lerobot_field_by_field(ours):
    theirs = json.loads((LEROBOT_DATASET / "meta/info.json").read_text())
    mine = json.loads((ours / "meta/info.json").read_text())
    assert list(mine) == list(theirs)  # same keys, same order
    for key in ("codebase_version", "chunks_size", "data_path", "video_path", "splits"):
        assert mine[key] == theirs[key] or key == "splits"
    assert mine["splits"] == {"train": "0:2"} == theirs["splits"]
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert mine["features"][name] == theirs["features"][name]
    for name in ("observation.state", "action"):
        assert set(mine["features"][name]) == set(theirs["features"][name])
        assert mine["features"][name]["dtype"] == theirs["features"][name]["dtype"] == "float32"
    video_mine, video_theirs = mine["features"][CAMERA], theirs["features"]["observation.images.cam"]
    assert set(video_mine) == set(video_theirs)
    assert video_mine["names"] == video_theirs["names"]
    assert list(video_mine["info"]) == list(video_theirs["info"])
    for key in ("video.codec", "video.pix_fmt", "video.is_depth_map", "video.channels", "has_audio"):
        assert video_mine["info"][key] == video_theirs["info"][key]
    assert (mine["total_videos"], mine["total_chunks"]) == (2, 1)


def test_parquet_schema_matches_lerobot(ours):
    theirs = pq.read_schema(LEROBOT_DATASET / "data/chunk-000/episode_000000.parquet")
    mine = pq.read_schema(ours / "data/chunk-000/episode_000000.parquet")
    shared = [n for n in mine.names if n in theirs.names]
    assert shared == mine.names  # every column we write is one LeRobot writes
    for name in shared:
        if name in ("observation.state", "action"):  # fixed_size_list<float>[n]; n differs between the two
            assert str(mine.field(name).type).split("[")[0] == str(theirs.field(name).type).split("[")[0]
        else:
            assert mine.field(name).type == theirs.field(name).type, name
    hf_mine = json.loads(mine.metadata[b"huggingface"])["info"]["features"]
    hf_theirs = json.loads(theirs.metadata[b"huggingface"])["info"]["features"]
    for name in shared:
        expected = dict(hf_theirs[name])
        if "length" in expected:
            expected["length"] = hf_mine[name]["length"]
        assert hf_mine[name] == expected, name


def test_episode_metadata_matches_lerobot(ours):
    for rel in ("meta/tasks.jsonl", "meta/episodes.jsonl"):
        theirs, mine = _jsonl(LEROBOT_DATASET / rel), _jsonl(ours / rel)
        assert [list(r) for r in mine] == [list(r) for r in theirs]
    theirs = _jsonl(LEROBOT_DATASET / "meta/episodes_stats.jsonl")[0]["stats"]
    mine = _jsonl(ours / "meta/episodes_stats.jsonl")[0]["stats"]
    assert set(mine) == set(theirs) - {"next.reward", "observation.images.cam"} | {CAMERA}
    for name, stats in mine.items():
        other = theirs["observation.images.cam" if name == CAMERA else name]
        assert set(stats) == set(other) == {"min", "max", "mean", "std", "count"}
        for key in stats:
            assert np.shape(stats[key])[1:] == np.shape(other[key])[1:] or name in ("observation.state", "action")
    assert np.shape(mine[CAMERA]["mean"]) == (3, 1, 1) and mine[CAMERA]["count"] == [12]
    assert mine["timestamp"]["count"] == [12] and np.shape(mine["timestamp"]["min"]) == (1,)


def test_video_encoding_matches_lerobot(ours):
    mine = probe(ours / f"videos/chunk-000/{CAMERA}/episode_000000.mp4", decode=True)
    theirs = probe(LEROBOT_DATASET / "videos/chunk-000/observation.images.cam/episode_000000.mp4", decode=True)
    assert (mine.codec, mine.pix_fmt) == (theirs.codec, theirs.pix_fmt) == ("av1", "yuv420p")
    assert mine.frames == 12 and abs(mine.last_time - 11 / 20) < 1e-6


def test_reads_a_dataset_lerobot_wrote():
    meta, problems = validate(LEROBOT_DATASET, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert [ep.length for ep in meta.episodes] == [12, 7]
    reader = FrameReader()
    for t in (0, 5, 11):  # LeRobot's frames: right half grey (20 t) % 256
        frame = reader.read(meta.video_file("observation.images.cam", 0), t / 30)
        assert abs(frame[:, 70:].mean() - (20 * t) % 256) < 4
    windows = WindowDataset([DataSource(LEROBOT_DATASET, "so100")], horizon=4, image_size=32)
    assert len(windows) == 19 and windows[18]["action_is_pad"].tolist() == [False, True, True, True]
    assert windows[12]["prompt"] == "place"


LOAD_WITH_LEROBOT = """
import json, sys
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, camera, fps = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = LeRobotDataset("local/evo1", root=root, video_backend="pyav",
                    delta_timestamps={"action": [i / fps for i in range(4)]})
out = {"len": len(ds), "episodes": ds.num_episodes, "samples": []}
for i in (0, 5, 11, 12, 20):
    s = ds[i]
    out["samples"].append({
        "state": s["observation.state"].tolist(), "action": s["action"].tolist(),
        "action_is_pad": s["action_is_pad"].tolist(), "task": s["task"],
        "image_shape": list(s[camera].shape), "image_mean": float(s[camera].mean()) * 255,
        "episode_index": int(s["episode_index"]), "frame_index": int(s["frame_index"])})
print(json.dumps(out))
"""


def load_with_lerobot(root: Path, camera: str, fps: int, tmp_path: Path) -> dict:
    """What LeRobot 0.3.3's `LeRobotDataset` reads from `root` (samples 0, 5, 11, 12, 20)."""
    try:
        import lerobot  # noqa: F401
    except ImportError:
        if os.environ.get("EVO1_REQUIRE_LEROBOT"):
            raise
        pytest.skip("lerobot 0.3.3 is not installed (CI installs it: see .ci/run)")
    env = {**os.environ, "PYTHONPATH": str(COMPAT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITH_LEROBOT, str(root), camera, str(fps)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_lerobot_loads_what_evo1_writes(ours, tmp_path):
    loaded = load_with_lerobot(ours, CAMERA, 20, tmp_path)
    assert loaded["len"] == 21 and loaded["episodes"] == 2
    meta = load_meta(ours)
    for sample in loaded["samples"]:
        e, t = sample["episode_index"], sample["frame_index"]
        state = e * 100 + t + np.arange(8) / 10
        assert np.allclose(sample["state"], state)
        n = meta.episodes[e].length
        expected_pad = [t + k >= n for k in range(4)]
        assert sample["action_is_pad"] == expected_pad
        first = np.asarray(sample["action"][0])
        assert np.allclose(first, -state[:4])
        assert sample["image_shape"] == [3, 32, 32]
        assert abs(sample["image_mean"] - frame_value(e, t)) < 3
        assert sample["task"] == ("reach the goal", "push the puck")[e]


@pytest.mark.slow
def test_lerobot_033_loads_a_lerobot_061_dataset_that_evo1_converted(tmp_path):
    from evo1cli.data.convert import convert_dataset

    converted = convert_dataset(LEROBOT_V30, tmp_path / "v21", "v2.1").root
    loaded = load_with_lerobot(converted, "observation.images.front", 10, tmp_path)
    assert loaded["len"] == 30 and loaded["episodes"] == 3
    lengths = (12, 10, 8)
    for sample in loaded["samples"]:
        e, f = sample["episode_index"], sample["frame_index"]
        state = np.sin(0.3 * f + np.arange(8) + e).astype(np.float32)  # what LeRobot 0.6.1 was given
        assert np.array_equal(np.asarray(sample["state"], np.float32), state)
        assert np.array_equal(
            np.asarray(sample["action"][0], np.float32), np.cos(0.2 * f + np.arange(4) - e).astype(np.float32)
        )
        assert sample["action_is_pad"] == [f + k >= lengths[e] for k in range(4)]
        assert sample["image_shape"] == [3, 96, 96]
        assert sample["task"] == ("reach the red target", "push the block left")[e % 2]
    frames = [s for s in loaded["samples"] if (s["episode_index"], s["frame_index"]) == (0, 0)]
    want = json.loads((LEROBOT_V30.parent / "expected.json").read_text())["episodes"][0]["first"]
    assert abs(frames[0]["image_mean"] - np.mean(want["observation.images.front.mean_rgb"])) < 1.0
