"""LeRobot v3.0: read exactly as LeRobot 0.6.1 reads it, converted both ways (matching LeRobot's own converter),
written episode by episode with the same crash safety as v2.1, and trained on like its v2.1 twin."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import CAMERA, WRIST, frame_value, make_dataset

from evo1cli.data.convert import convert_dataset
from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset
from evo1cli.data.pad import pad_dataset
from evo1cli.data.reader import read_episode
from evo1cli.data.stats import dataset_stats
from evo1cli.data.types import V21, V30, vector_feature
from evo1cli.data.validate import validate
from evo1cli.data.video import FrameReader, packet_times
from evo1cli.data.writer import Camera, DatasetWriter
from evo1cli.errors import Evo1Error

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot061_v30"
NATIVE = FIXTURES / "dataset"  # written by LeRobot 0.6.1
CONVERTED = FIXTURES / "converted-from-v21"  # v21/: evo1's; v30/: LeRobot 0.6.1's conversion of it
FRONT = "observation.images.front"


def expected(path: Path) -> dict:
    return json.loads(path.read_text())


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def frames(meta, key: str, episode: int) -> list[np.ndarray]:
    """Every decoded frame of an episode's camera, read at its span's start + t as the loader does."""
    reader, span = FrameReader(), meta.episodes[episode].videos[key]
    table = read_episode(meta, episode)
    return [reader.read(meta.video_file(key, episode), span.start + t) for t in table.timestamp]


def generated_image(e: int, f: int, cam: int, size: int = 96) -> np.ndarray:
    """The image LeRobot's writer got for frame f of episode e (see tests/fixtures/README.md)."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.stack(
        [
            (x * 255 // (size - 1) + 40 * f) % 256,
            (y * 255 // (size - 1) + 60 * e) % 256,
            np.full_like(x, (90 * cam + 17 * f) % 256),
        ],
        -1,
    ).astype(np.uint8)
    side = size // 6
    o = (f * 3) % (size - side)
    image[o : o + side, o : o + side] = 255 if cam == 0 else 0
    return image


def parquet_rows(path: Path) -> dict[str, list]:
    """A parquet file's columns as Python values (list and fixed-size-list vectors alike)."""
    table = pq.read_table(path)
    return {name: table[name].to_pylist() for name in table.column_names}


# ---------------------------------------------------------------------------------------------- reading
def test_reads_the_dataset_lerobot_061_wrote_exactly():
    want = expected(FIXTURES / "expected.json")
    meta, problems = validate(NATIVE, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert meta.version == V30 and meta.fps == want["fps"] and meta.info["robot_type"] == want["robot_type"]
    assert (len(meta.episodes), meta.total_frames) == (want["total_episodes"], want["total_frames"])
    assert [meta.tasks[i] for i in sorted(meta.tasks)] == want["tasks"]
    assert {k: {"dtype": ft["dtype"], "shape": list(ft["shape"])} for k, ft in meta.features.items()} == want[
        "features"
    ]
    assert meta.video_keys == want["cameras"]
    reader, offsets = FrameReader(), meta.episode_offsets()
    for e, ep in enumerate(want["episodes"]):
        episode = meta.episodes[e]
        assert (episode.index, episode.length, episode.tasks) == (ep["episode_index"], ep["length"], ep["tasks"])
        assert (offsets[e], offsets[e] + episode.length) == (ep["dataset_from_index"], ep["dataset_to_index"])
        assert meta.data_file(e) == NATIVE / ep["data_file"]
        table = read_episode(meta, e, offset=offsets[e])
        for end, t in (("first", 0), ("last", episode.length - 1)):
            frame = ep[end]
            assert (t, offsets[e] + t) == (frame["frame_index"], frame["index"])
            assert np.float32(table.timestamp[t]) == np.float32(frame["timestamp"])
            assert meta.tasks[int(table.task_index[t])] == frame["task"]
            assert np.array_equal(table.state[t], f32(frame["observation.state"]))  # exactly, as float32
            assert np.array_equal(table.action[t], f32(frame["action"]))
            for key in meta.video_keys:
                span = episode.videos[key]
                image = reader.read(meta.video_file(key, e), span.start + table.timestamp[t])
                assert np.abs(image.mean(axis=(0, 1)) - frame[f"{key}.mean_rgb"]).max() < 1.0
        for key, video in ep["videos"].items():
            span = episode.videos[key]
            assert meta.video_file(key, e) == NATIVE / video["file"]
            assert (span.start, span.end) == (video["from_timestamp"], video["to_timestamp"])


def test_every_frame_of_every_episode_is_the_one_lerobot_encoded():
    meta = load_meta(NATIVE)
    for e, episode in enumerate(meta.episodes):
        for c, key in enumerate(meta.video_keys):
            decoded = frames(meta, key, e)
            assert len(decoded) == episode.length
            for f, image in enumerate(decoded):
                error = np.abs(image.astype(float) - generated_image(e, f, c)).mean()
                assert error < 10, (key, e, f, error)  # AV1 at crf 30: ~5; the neighbouring frame: > 25
        table = read_episode(meta, e)
        t = np.arange(episode.length)[:, None]
        assert np.array_equal(table.state, np.sin(0.3 * t + np.arange(8) + e).astype(np.float32))
        assert np.array_equal(table.action, np.cos(0.2 * t + np.arange(4) - e).astype(np.float32))


def test_reads_lerobots_converter_output_with_list_columns():
    want = expected(CONVERTED / "expected.json")
    meta, problems = validate(CONVERTED / "v30", decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert str(pq.read_schema(meta.data_file(0)).field("action").type) == "list<element: float>"
    original = load_meta(CONVERTED / "v21")
    for e, ep in enumerate(want["episodes"]):
        assert meta.episodes[e].extra == original.episodes[e].extra  # evo1's seed, success, ... survived LeRobot
        assert np.array_equal(read_episode(meta, e).state, read_episode(original, e).state)
        assert np.array_equal(read_episode(meta, e).state[-1], f32(ep["last"]["observation.state"]))
        for key in meta.video_keys:
            assert meta.episodes[e].videos[key].start == ep["videos"][key]["from_timestamp"]
            assert all(
                np.array_equal(a, b) for a, b in zip(frames(meta, key, e), frames(original, key, e), strict=True)
            )


def test_training_windows_stats_and_padding_on_v30(tmp_path):
    meta = load_meta(NATIVE)
    windows = WindowDataset([DataSource(NATIVE, "synthetic")], horizon=4, image_size=32)
    assert len(windows) == 30
    last = windows[11]  # episode 0's last frame: 3 padded steps
    assert last["action_is_pad"].tolist() == [False, True, True, True]
    assert last["prompt"] == "reach the red target" and windows[12]["prompt"] == "push the block left"
    assert last["image_mask"].tolist() == [True, True, False]
    stats = dataset_stats(meta)
    assert stats["evo1"]["total_frames"] == 30
    assert np.isclose(stats["action"]["max"][0], 1.0)
    padded = pad_dataset(NATIVE, tmp_path / "padded", state_dim=24, action_dim=24)
    copy, problems = validate(padded, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert copy.version == V30 and copy.dim("observation.state") == 24
    assert pq.read_schema(copy.data_file(0)).field("observation.state").type.list_size == 24
    padded_windows = WindowDataset([DataSource(padded, "synthetic")], horizon=4, image_size=32)
    for i in (0, 11, 12, 29):
        a, b = windows[i], padded_windows[i]
        assert all(torch.equal(a[k], b[k]) for k in ("state", "actions", "action_mask", "action_is_pad", "images"))
    padded_stats = copy.episodes_stats[1]["observation.state"]
    assert set(padded_stats) >= {"q01", "q99"} and padded_stats["max"][8:] == [0.0] * 16


# ---------------------------------------------------------------------------------------------- converting
def test_v21_to_v30_matches_lerobots_own_converter(tmp_path):
    ours = convert_dataset(CONVERTED / "v21", tmp_path / "v30", V30)
    theirs = CONVERTED / "v30"
    _, problems = validate(ours.root, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    files = sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(ours.root)) for p in ours.root.rglob("*") if p.is_file()) == files
    for rel in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        mine, lerobots = parquet_rows(ours.root / rel), parquet_rows(theirs / rel)
        assert set(mine) == set(lerobots), rel
        for name in lerobots:  # every value, exactly (vectors: fixed-size lists here, lists there)
            assert mine[name] == lerobots[name], (rel, name)
    schema = pq.read_schema(theirs / "meta/episodes/chunk-000/file-000.parquet")
    assert pq.read_schema(ours.root / "meta/episodes/chunk-000/file-000.parquet").types == [
        schema.field(n).type for n in pq.read_schema(ours.root / "meta/episodes/chunk-000/file-000.parquet").names
    ]
    info, lerobot_info = expected(ours.root / "meta/info.json"), expected(theirs / "meta/info.json")
    for ft in lerobot_info["features"].values():
        ft.pop("fps", None)  # LeRobot's converter copies fps into every feature; evo1 keeps features as they are
    assert info == lerobot_info and list(info) == list(lerobot_info)
    stats, lerobot_stats = expected(ours.root / "meta/stats.json"), expected(theirs / "meta/stats.json")
    assert set(stats) == set(lerobot_stats)
    for feature, values in lerobot_stats.items():
        assert set(stats[feature]) == set(values)
        for name, value in values.items():
            assert np.allclose(stats[feature][name], value, rtol=1e-12, atol=1e-15), (feature, name)
    meta = load_meta(theirs)
    for e in range(len(meta.episodes)):
        assert all(
            np.array_equal(a, b) for a, b in zip(frames(ours, CORNER2, e), frames(meta, CORNER2, e), strict=True)
        )
    assert packet_times(ours.video_file(CORNER2, 0))[1] == packet_times(meta.video_file(CORNER2, 0))[1]


CORNER2 = "observation.images.corner2"


def test_v30_to_v21_to_v30_is_lossless(tmp_path):
    v21 = convert_dataset(NATIVE, tmp_path / "v21", V21)
    _, problems = validate(v21.root, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert sorted(p.name for p in (v21.root / "meta").iterdir()) == [
        "episodes.jsonl", "episodes_stats.jsonl", "info.json", "tasks.jsonl"
    ]  # fmt: skip
    back = convert_dataset(v21.root, tmp_path / "v30", V30)
    native = load_meta(NATIVE)
    for rel in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        assert parquet_rows(back.root / rel) == parquet_rows(NATIVE / rel), rel
    assert expected(back.root / "meta/info.json") == expected(NATIVE / "meta/info.json")
    stats, native_stats = expected(back.root / "meta/stats.json"), expected(NATIVE / "meta/stats.json")
    for feature, values in native_stats.items():  # aggregated in another order: float rounding only
        for name, value in values.items():
            assert np.allclose(stats[feature][name], value, rtol=1e-7, atol=1e-9), (feature, name)
    for e in range(3):
        for key in native.video_keys:
            assert all(np.array_equal(a, b) for a, b in zip(frames(back, key, e), frames(native, key, e), strict=True))
            assert all(np.array_equal(a, b) for a, b in zip(frames(v21, key, e), frames(native, key, e), strict=True))


def test_evo1_extras_survive_both_directions(tmp_path):
    make_dataset(tmp_path / "ds", lengths=(5, 4, 6), cameras=(CAMERA, WRIST))
    writer = DatasetWriter(tmp_path / "ds", 20, _vectors(), [Camera(CAMERA, 32, 32), Camera(WRIST, 32, 32)])
    _record(writer, 3, 4, seed=7, variation=3, success=True, joints=[0.5, 1.5])
    padded = pad_dataset(tmp_path / "ds", tmp_path / "padded", state_dim=12, action_dim=12)
    v30 = convert_dataset(padded, tmp_path / "v30", V30)
    back = convert_dataset(v30.root, tmp_path / "v21", V21)
    for root in (v30.root, back.root):
        meta = load_meta(root)
        assert meta.episodes[3].extra == {"seed": 7, "variation": 3, "success": True, "joints": [0.5, 1.5]}
        assert meta.episodes[2].extra == {}  # a field only some episodes have stays theirs
        assert (root / "meta/evo1_padding.json").read_text() == (padded / "meta/evo1_padding.json").read_text()
    for rel in ("meta/episodes.jsonl", "meta/episodes_stats.jsonl", "meta/tasks.jsonl", "meta/info.json"):
        assert (back.root / rel).read_text() == (padded / rel).read_text(), rel
    for e in range(4):
        name = f"data/chunk-000/episode_{e:06d}.parquet"
        assert pq.read_table(back.root / name).equals(pq.read_table(padded / name))
        assert pq.read_schema(back.root / name).metadata == pq.read_schema(padded / name).metadata


def test_a_conversion_that_fails_leaves_nothing(tmp_path):
    source = tmp_path / "ds"
    make_dataset(source, lengths=(5, 4))
    (source / f"videos/chunk-000/{CAMERA}/episode_000001.mp4").write_bytes(b"not a video")
    with pytest.raises(Evo1Error) as err:
        convert_dataset(source, tmp_path / "out", V30)
    assert err.value.path == str(source / f"videos/chunk-000/{CAMERA}/episode_000001.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no copy, no hidden staging left
    with pytest.raises(Evo1Error, match=r"already a LeRobot v2\.1 dataset"):
        convert_dataset(source, tmp_path / "out", V21)
    with pytest.raises(Evo1Error, match="must be one of"):
        convert_dataset(source, tmp_path / "out", "v3")
    (tmp_path / "taken").mkdir()
    with pytest.raises(Evo1Error, match="already exists"):
        convert_dataset(NATIVE, tmp_path / "taken", V21)


# ---------------------------------------------------------------------------------------------- writing
def _vectors(state_dim: int = 8) -> dict:
    return {"observation.state": vector_feature(state_dim), "action": vector_feature(4)}


def _record(writer: DatasetWriter, e: int, n: int, task: str = "third", **extra) -> None:
    cameras = list(writer.cameras)
    with writer.episode() as episode:
        for t in range(n):
            state = (e * 100 + t + np.arange(8) / 10).astype(np.float32)
            images = {key: np.full((32, 32, 3), frame_value(e, t) + 5 * k, np.uint8) for k, key in enumerate(cameras)}
            episode.add_frame({"observation.state": state, "action": -state[:4]}, images, task)
        episode.commit(**extra)


def _contents(root: Path) -> list[tuple]:
    """Every committed episode's table and decoded frames (what must survive a crash)."""
    meta = load_meta(root)
    out = []
    for e in range(len(meta.episodes)):
        table = read_episode(meta, e)
        pixels = [int(f.mean()) for key in meta.video_keys for f in frames(meta, key, e)]
        out.append((table.state.tobytes(), table.action.tobytes(), table.task_index.tobytes(), pixels))
    return out


def test_v30_writer_appends_into_shared_files_and_starts_new_ones_past_the_size_limit(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, lengths=(6, 5), cameras=(CAMERA, WRIST), version=V30)
    info = expected(root / "meta/info.json")
    assert list(info) == list(expected(NATIVE / "meta/info.json"))  # LeRobot 0.6.1's keys, in its order
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == sorted(
        ["meta/info.json", "meta/tasks.parquet", "meta/stats.json", "meta/episodes/chunk-000/file-000.parquet",
         "data/chunk-000/file-000.parquet", f"videos/{CAMERA}/chunk-000/file-000.mp4",
         f"videos/{WRIST}/chunk-000/file-000.mp4"]
    )  # fmt: skip
    info.update(chunks_size=2, data_files_size_in_mb=0.005, video_files_size_in_mb=0.01)  # ~2 episodes per file
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    cameras = [Camera(CAMERA, 32, 32), Camera(WRIST, 32, 32)]
    for e, n in ((2, 7), (3, 4), (4, 5), (5, 3)):
        _record(DatasetWriter(root, 20, _vectors(), cameras, version=V30), e, n, task="other", seed=e)
    meta, problems = validate(root, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    places = [ep.data for ep in meta.episodes]
    assert places[:2] == [(0, 0), (0, 0)] and len(set(places)) >= 3 and (1, 0) in places  # chunk 1 after 2 files
    assert [ep.extra for ep in meta.episodes[2:]] == [{"seed": e} for e in range(2, 6)]
    for e, episode in enumerate(meta.episodes):
        table = read_episode(meta, e, offset=meta.episode_offsets()[e])
        assert np.array_equal(table.state[:, 0], e * 100 + np.arange(episode.length))
        for k, key in enumerate(meta.video_keys):
            assert [round(f.mean()) for f in frames(meta, key, e)] == pytest.approx(
                [frame_value(e, t) + 5 * k for t in range(episode.length)], abs=2
            )
    with pytest.raises(Evo1Error, match=r"is a LeRobot v3\.0 dataset, not v2\.1"):
        DatasetWriter(root, 20, _vectors(), cameras, version=V21)


def test_appending_to_a_dataset_lerobots_converter_wrote(tmp_path):
    root = tmp_path / "conv"
    shutil.copytree(CONVERTED / "v30", root)
    before = _contents(root)
    writer = DatasetWriter(root, 80, _vectors(), [Camera(CORNER2, 96, 96)])
    cameras_frame = {CORNER2: np.full((96, 96, 3), 77, np.uint8)}
    with writer.episode() as episode:
        for t in range(5):
            episode.add_frame(
                {"observation.state": np.full(8, t, np.float32), "action": np.zeros(4)}, cameras_frame, "new"
            )
        episode.commit(seed=99)
    meta, problems = validate(root, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    assert _contents(root)[:2] == before and meta.episodes[2].extra == {"seed": 99}
    assert meta.episodes[2].data == (0, 0) and meta.episodes[2].videos[CORNER2].start == 1.5375
    assert pq.read_schema(meta.data_file(0)).field("action").type.list_size == 4  # now a fixed-size list


def test_tasks_parquet_reads_back_in_pandas_as_lerobot_reads_it(tmp_path):
    pd = pytest.importorskip("pandas")  # LeRobot's load_tasks: pd.read_parquet, the task string as the index
    make_dataset(tmp_path / "ds", lengths=(3, 2), version=V30)
    tasks = pd.read_parquet(tmp_path / "ds/meta/tasks.parquet")
    lerobots = pd.read_parquet(NATIVE / "meta/tasks.parquet")
    assert tasks.index.name == lerobots.index.name == "task" and list(tasks.columns) == list(lerobots.columns)
    assert tasks.loc["push the puck", "task_index"] == 1 and tasks.index.tolist() == ["reach the goal", "push the puck"]


# ---------------------------------------------------------------------------------------------- training
def test_the_same_windows_from_a_v30_dataset_and_its_v21_twin(tmp_path):
    make_dataset(tmp_path / "v21", lengths=(14, 11, 9), cameras=(CAMERA, WRIST))
    convert_dataset(tmp_path / "v21", tmp_path / "v30", V30)
    a = WindowDataset([DataSource(tmp_path / "v21", "arm", "toy")], horizon=8, image_size=32)
    b = WindowDataset([DataSource(tmp_path / "v30", "arm", "toy")], horizon=8, image_size=32)
    assert len(a) == len(b) == 34
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["prompt"] == y["prompt"]
        for key in ("state", "actions", "action_mask", "action_is_pad", "images", "image_mask"):
            assert torch.equal(x[key], y[key]), (i, key)


@pytest.mark.slow
def test_a_training_run_on_v30_logs_the_losses_of_its_v21_twin(tmp_path):
    from evo1cli.train.metrics import read_metrics
    from evo1cli.train.recipe import parse_recipe
    from evo1cli.train.trainer import train

    make_dataset(tmp_path / "v21", lengths=(14, 11, 9))
    convert_dataset(tmp_path / "v21", tmp_path / "v30", V30)
    losses = []
    for layout in ("v21", "v30"):
        raw = {
            "name": "twin", "output": str(tmp_path / f"run-{layout}"), "seed": 3,
            "model": {"preset": "tiny", "image_size": 32, "horizon": 8},
            "data": {"num_workers": 0, "groups": {"toy": {"toy": {"path": str(tmp_path / layout), "views": [CAMERA]}}}},
            "train": {"batch_size": 4, "lr": 1e-3, "warmup_steps": 1},
            "stage1": {"steps": 4}, "stage2": {"steps": 2}, "checkpoint": {"every": 10}, "logging": {"every": 1},
        }  # fmt: skip
        train(parse_recipe(raw, tmp_path / f"{layout}.yaml"))
        losses.append([[r["loss"] for r in read_metrics(tmp_path / f"run-{layout}" / s)] for s in ("stage1", "stage2")])
    assert losses[0] == losses[1] and len(losses[0][0]) == 4  # exactly equal


# ---------------------------------------------------------------------------------------------- the CLI
def evo1(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_convert_and_describe(tmp_path):
    result = evo1("dataset", "convert", str(NATIVE), "--to", "v2.1", "--out", str(tmp_path / "v21"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "out": str(tmp_path / "v21"),
        "codebase_version": "v2.1",
        "episodes": 3,
        "frames": 30,
    }
    info = json.loads(evo1("dataset", "info", str(NATIVE), "--json").stdout)
    assert info["codebase_version"] == "v3.0" and info["episodes"] == 3 and info["cameras"] == [FRONT, WRIST]
    assert evo1("dataset", "validate", str(NATIVE)).returncode == 0
    broken = tmp_path / "broken"
    shutil.copytree(NATIVE, broken)
    (broken / "meta/episodes/chunk-000/file-000.parquet").unlink()
    result = evo1("dataset", "convert", str(broken), "--to", "v2.1", "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(
        f"error: {broken / 'meta/episodes/chunk-000/file-000.parquet'}: file not found"
    )
    assert not (tmp_path / "out").exists()
