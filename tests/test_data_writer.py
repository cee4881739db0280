"""The writer and reader: round trips, appending, and crash consistency at every step of a commit (v2.1 and v3.0)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import CAMERA, WRIST, frame_value, make_dataset

from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.types import vector_feature
from evo1cli.data.validate import validate
from evo1cli.data.video import FrameReader, read_frame_from_start
from evo1cli.data.writer import Camera, DatasetWriter
from evo1cli.errors import Evo1Error


def _writer(root, fps=20, state_dim=8):
    return DatasetWriter(
        root,
        fps,
        {"observation.state": vector_feature(state_dim), "action": vector_feature(4)},
        [Camera(CAMERA, 32, 32)],
    )


def test_round_trip_tables_and_metadata(tmp_path):
    meta = make_dataset(tmp_path / "ds", lengths=(12, 9), cameras=(CAMERA, WRIST))
    meta = load_meta(tmp_path / "ds")
    assert [ep.length for ep in meta.episodes] == [12, 9] and meta.total_frames == 21
    assert meta.tasks == {0: "reach the goal", 1: "push the puck"}
    assert meta.video_keys == [CAMERA, WRIST]
    for e, offset in enumerate(meta.episode_offsets()):
        table = read_episode(meta, e, offset=offset)
        n = len(table)
        expected = (e * 100 + np.arange(n)[:, None] + np.arange(8) / 10).astype(np.float32)
        assert np.array_equal(table.state, expected)
        assert np.array_equal(table.action, -expected[:, :4])
        assert np.allclose(table.timestamp, np.arange(n) / 20, atol=1e-6)
        assert (table.task_index == e).all()
    _, problems = validate(tmp_path / "ds", decode=True)
    assert not problems.items


def test_random_access_frames_equal_sequential_decoding(tmp_path):
    meta = make_dataset(tmp_path / "ds", lengths=(30,))
    path = meta.video_file(CAMERA, 0)
    reader = FrameReader(max_open=1)
    order = [17, 3, 4, 5, 29, 0, 28, 12, 12, 13, 1, 3, 3, 4]
    for t in order:
        # float32 timestamps as the tables store them: 3 / 20 lies a hair after frame 3, not at frame 4
        for time in (t / 20, float(np.float32(t / 20))):
            frame = reader.read(path, time)
            assert np.array_equal(frame, read_frame_from_start(path, t / 20)), t
            assert abs(frame.mean() - frame_value(0, t)) < 3
    with pytest.raises(Evo1Error, match="no frame at"):
        reader.read(path, 0.0123)  # between two frames
    with pytest.raises(Evo1Error, match="cannot be opened"):
        reader.read(tmp_path / "missing.mp4", 0.0)


def test_append_continues_indices_and_keeps_extra_keys(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, lengths=(5,))
    writer = _writer(root)
    with writer.episode() as episode:
        for t in range(4):
            state = np.full(8, t, np.float32)
            episode.add_frame(
                {"observation.state": state, "action": state[:4]}, {CAMERA: np.zeros((32, 32, 3), np.uint8)}, "new task"
            )
        episode.commit(seed=7, success=True)
    meta = load_meta(root)
    assert [ep.length for ep in meta.episodes] == [5, 4]
    assert meta.episodes[1].extra == {"seed": 7, "success": True}
    assert meta.tasks == {0: "reach the goal", 1: "new task"}
    table = read_episode(meta, 1, offset=5)  # the global index continues at 5
    assert table.task_index.tolist() == [1] * 4
    assert not validate(root)[1].items
    _writer(root)  # reopening rewrites metadata without losing the extra keys
    assert load_meta(root).episodes[1].extra == {"seed": 7, "success": True}


@pytest.mark.parametrize(
    "change, field",
    [({"fps": 30}, "fps"), ({"state_dim": 6}, "features.observation.state")],
)
def test_append_with_other_features_is_refused(tmp_path, change, field):
    root = tmp_path / "ds"
    make_dataset(root, lengths=(5,))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(Evo1Error, match=field):
        _writer(root, **change)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_writer_refuses_a_non_dataset_directory(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(Evo1Error, match="not empty"):
        _writer(tmp_path / "x")


def test_an_exception_while_recording_discards_the_episode(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, lengths=(5,))
    writer = _writer(root)
    with pytest.raises(RuntimeError), writer.episode() as episode:
        episode.add_frame(
            {"observation.state": np.zeros(8), "action": np.zeros(4)}, {CAMERA: np.zeros((32, 32, 3), np.uint8)}, "x"
        )
        raise RuntimeError("robot unplugged")
    _, problems = validate(root)
    assert not problems.items and len(load_meta(root).episodes) == 1


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs, no cleanup."""


def _committed(root) -> list[tuple]:
    """Each committed episode's state and the grey level of each decoded frame (what a crash must not touch)."""
    meta, reader, out = load_meta(root), FrameReader(), []
    for e, episode in enumerate(meta.episodes):
        table, span = read_episode(meta, e), episode.videos[CAMERA]
        levels = [round(reader.read(meta.video_file(CAMERA, e), span.start + t).mean()) for t in table.timestamp]
        out.append((table.state.tobytes(), levels))
    return out


@pytest.mark.parametrize("layout, lengths", [("v2.1", (6, 5)), ("v3.0", (6, 5)), ("v3.0", ())])
@pytest.mark.parametrize("replaces_before_death", range(7))
def test_killed_at_every_step_of_a_commit(tmp_path, monkeypatch, replaces_before_death, layout, lengths):
    """A commit is 6 os.replace calls (v2.1: parquet, mp4, 3 jsonl, info.json; v3.0: the shared parquet and mp4
    rewritten, meta/episodes, tasks.parquet, stats.json, info.json). Die before each of them (and after the
    last): the dataset validates (leftovers are warnings), the old episodes read back the same, and the next
    writer cleans up and appends (v3.0 also into an empty dataset: the first files are the new episode's)."""
    root = tmp_path / "ds"
    make_dataset(root, lengths=lengths, version=layout)
    n = len(lengths)
    before = _committed(root)
    writer = _writer(root)
    episode = writer.episode()
    for t in range(7):
        state = np.full(8, 50 + t, np.float32)
        episode.add_frame(
            {"observation.state": state, "action": state[:4]}, {CAMERA: np.zeros((32, 32, 3), np.uint8)}, "third"
        )

    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        if len(calls) == replaces_before_death:
            raise Killed
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    committed = True
    try:
        episode.commit()
    except Killed:
        committed = False
    monkeypatch.setattr(os, "replace", real_replace)
    assert committed == (replaces_before_death == 6)

    meta, problems = validate(root, decode=True)
    assert not problems.errors, [str(p) for p in problems.errors]
    assert meta.version == layout and len(meta.episodes) == n + committed  # info.json: the commit point
    assert _committed(root)[:n] == before
    if 0 < replaces_before_death < 6:
        assert problems.warnings  # what the unfinished episode left is named

    writer = _writer(root)  # recovery: leftovers go, then appending works
    assert not validate(root)[1].items
    with writer.episode() as episode:
        episode.add_frame(
            {"observation.state": np.zeros(8), "action": np.zeros(4)},
            {CAMERA: np.zeros((32, 32, 3), np.uint8)},
            "fourth",
        )
        episode.commit()
    meta, problems = validate(root, decode=True)
    assert not problems.items and len(meta.episodes) == n + committed + 1
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == len(meta.episodes)
    assert _committed(root)[:n] == before
