"""A corpus of malformed datasets: each gets a clear error naming the file, no traceback, nothing written.

Every case starts from a copy of one valid dataset written by evo1's writer (`make_dataset`: episode 0 has
12 frames, episode 1 has 9, one 32x32 camera at 20 fps), in the v2.1 layout or (the v3.0 cases) in the v3.0
layout, where both episodes share one parquet and one mp4, and breaks one thing, almost always in episode 1.
For each case:
  - `validate` reports an error whose file is the broken one and whose message says what is wrong,
  - nothing in the dataset changes (every file is hashed before and after),
  - the strict consumers (training windows, stats, padding) refuse it with an `Evo1Error` naming the file.
The `evo1 dataset ...` commands are then run as real processes on a few of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CAMERA, frame_value, make_dataset

from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset
from evo1cli.data.pad import pad_dataset
from evo1cli.data.stats import dataset_stats
from evo1cli.data.tables import column
from evo1cli.data.types import EVO1_STATS_PATH, V21, V30
from evo1cli.data.validate import validate
from evo1cli.data.video import VideoWriter
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, STATE

LENGTHS = (12, 9)
INFO = "meta/info.json"
TASKS = "meta/tasks.jsonl"
EPISODES = "meta/episodes.jsonl"
EPISODES_STATS = "meta/episodes_stats.jsonl"
EP1 = "data/chunk-000/episode_000001.parquet"
VID1 = f"videos/chunk-000/{CAMERA}/episode_000001.mp4"
# v3.0: both episodes in one file each
V30_EPISODES = "meta/episodes/chunk-000/file-000.parquet"
V30_TASKS = "meta/tasks.parquet"
V30_DATA = "data/chunk-000/file-000.parquet"
V30_VID = f"videos/{CAMERA}/chunk-000/file-000.mp4"
VIDEO = f"videos/{CAMERA}"  # the prefix of an episode's video columns in meta/episodes


# ---------------------------------------------------------------------------------------------- helpers
def edit_info(root: Path, change: Callable[[dict], object]) -> None:
    path = root / INFO
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info, indent=4) + "\n")


def edit_jsonl(root: Path, rel: str, change: Callable[[list[dict]], object]) -> None:
    path = root / rel
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def replace_line(root: Path, rel: str, number: int, text: str) -> None:
    path = root / rel
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def columns(root: Path, rel: str = EP1) -> dict[str, np.ndarray]:
    table = pq.read_table(root / rel)
    return {name: column(table, name) for name in table.column_names}


def to_arrow(values: np.ndarray | pa.Array) -> pa.Array:
    """A (n, d) array as a fixed-size-list column (as LeRobot writes vectors), an (n,) one as a plain column."""
    if isinstance(values, pa.Array):
        return values
    values = np.asarray(values)
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    return pa.array(values)


def rewrite_parquet(root: Path, changes: dict[str, np.ndarray | pa.Array | None], rel: str = EP1) -> None:
    """Replace (or, with None, drop) columns of an episode's table, keeping the others as they are."""
    path = root / rel
    table = pq.read_table(path)
    for name, values in changes.items():
        i = table.column_names.index(name)
        table = table.remove_column(i) if values is None else table.set_column(i, name, to_arrow(values))
    pq.write_table(table, path)


def edit_column(root: Path, name: str, change: Callable[[np.ndarray], np.ndarray | None]) -> None:
    values = columns(root)[name].copy()
    result = change(values)
    rewrite_parquet(root, {name: values if result is None else result})


def encode(root: Path, frames: int, fps: int = 20, size: int = 32, rel: str = VID1) -> None:
    """Re-encode episode 1's video with other frames, fps or size."""
    writer = VideoWriter(root / rel, fps, size, size)
    for t in range(frames):
        writer.add(np.full((size, size, 3), frame_value(1, t), np.uint8))
    writer.close()


def truncate(path: Path, keep: int | None = None) -> None:
    """Cut a file in half (or to `keep` bytes), as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def snapshot(root: Path) -> dict[str, str]:
    """Every file (hidden ones too) and directory under root, with the file's sha256."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(Path(folder, name), root) + "/"] = "dir"
        for name in files:
            path = Path(folder, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def window(episode: int, frame: int) -> int:
    """The loader's window index of (episode, frame): windows start at every frame, episodes in order."""
    return sum(LENGTHS[:episode]) + frame


def set_dims_30(root: Path) -> None:
    edit_info(root, lambda info: info["features"][STATE].update(shape=[30], names=[str(i) for i in range(30)]))
    for rel in ("data/chunk-000/episode_000000.parquet", EP1):
        state = columns(root, rel)[STATE]
        rewrite_parquet(root, {STATE: np.pad(state, ((0, 0), (0, 22)))}, rel)


def set_length_8(root: Path) -> None:
    edit_jsonl(root, EPISODES, lambda rows: rows[1].update(length=8))
    edit_info(root, lambda info: info.update(total_frames=20))  # consistent totals: only the table disagrees


def ragged_state(root: Path) -> None:
    rows = columns(root)[STATE].tolist()
    rows[4] = rows[4][:7]
    rewrite_parquet(root, {STATE: pa.array(rows, type=pa.list_(pa.float32()))})


def add_leftovers(root: Path) -> None:
    """What a writer killed after moving episode 2's files and rewriting the jsonl files, before info.json."""
    shutil.copyfile(root / EP1, root / "data/chunk-000/episode_000002.parquet")
    shutil.copyfile(root / VID1, root / f"videos/chunk-000/{CAMERA}/episode_000002.mp4")
    staging = root / ".evo1-staging/episode_000002"
    staging.mkdir(parents=True)
    (staging / f"{CAMERA}.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom")  # half an encoder's output
    edit_jsonl(root, TASKS, lambda rows: rows.append({"task_index": 2, "task": "open the drawer"}))
    edit_jsonl(
        root, EPISODES, lambda rows: rows.append({"episode_index": 2, "tasks": ["open the drawer"], "length": 9})
    )
    edit_jsonl(root, EPISODES_STATS, lambda rows: rows.append({**rows[1], "episode_index": 2}))


def edit_episodes(root: Path, change: Callable[[list[dict]], object], drop: tuple[str, ...] = ()) -> None:
    """Change the rows of a v3.0 dataset's meta/episodes file (or drop columns), keeping the column types."""
    path = root / V30_EPISODES
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    table = pa.Table.from_pylist(rows, schema=table.schema)
    pq.write_table(table.drop_columns([c for c in table.column_names if c in drop or c.startswith(drop)]), path)


def shift_span(root: Path, start: float, end: float) -> None:
    edit_episodes(root, lambda rows: rows[1].update({f"{VIDEO}/from_timestamp": start, f"{VIDEO}/to_timestamp": end}))


def keep_rows(root: Path, count: int) -> None:
    path = root / V30_DATA
    pq.write_table(pq.read_table(path).slice(0, count), path)


def v21_file_mixed_in(root: Path) -> None:
    (root / "meta/episodes.jsonl").write_text('{"episode_index": 0, "tasks": ["reach the goal"], "length": 12}\n')


# ---------------------------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class Case:
    id: str
    corrupt: Callable[[Path], object]
    file: str  # the file the error must name, relative to the dataset
    message: str | tuple[str, ...]  # a distinctive part of validate's message (or one of several)
    field: str | None = None  # the field validate must name, where it names one
    sample: tuple[int, int] | None = None  # a video case: (episode, frame) whose window fails to load
    stats_reads_it: bool = True  # the stats read this part (they ignore the global `index` column)
    version: str = V21  # the layout of the dataset it breaks

    @property
    def video(self) -> bool:
        return self.sample is not None


CASES = [
    # ---- metadata
    Case("missing-info", lambda r: (r / INFO).unlink(), INFO, "file not found"),
    Case("info-not-json", lambda r: (r / INFO).write_text('{"codebase_version": "v2.1",'), INFO, "not valid JSON"),
    Case("info-not-object", lambda r: (r / INFO).write_text("[1, 2]"), INFO, "expected a JSON object"),
    Case(
        "version-v3.1",
        lambda r: edit_info(r, lambda i: i.update(codebase_version="v3.1")),
        INFO,
        "evo1 reads LeRobot v2.1 (LeRobot 0.3.x) and v3.0",
        "codebase_version",
    ),
    Case(
        "version-v2.0",
        lambda r: edit_info(r, lambda i: i.update(codebase_version="v2.0")),
        INFO,
        "is v2.0",
        "codebase_version",
    ),
    Case("fps-zero", lambda r: edit_info(r, lambda i: i.update(fps=0)), INFO, "positive integer", "fps"),
    Case("missing-tasks", lambda r: (r / TASKS).unlink(), TASKS, "file not found"),
    Case("missing-episodes", lambda r: (r / EPISODES).unlink(), EPISODES, "file not found"),
    Case("missing-episodes-stats", lambda r: (r / EPISODES_STATS).unlink(), EPISODES_STATS, "file not found"),
    Case(
        "jsonl-line-malformed",
        lambda r: replace_line(r, EPISODES, 2, '{"episode_index": 1, "tasks": ['),
        EPISODES,
        "not valid JSON",
        "line 2",
    ),
    Case(
        "jsonl-not-utf8",
        lambda r: (r / EPISODES).write_bytes(b'{"episode_index": 0, "tasks": ["\xff\xfe"], "length": 12}\n'),
        EPISODES,
        "not UTF-8 text",
    ),
    Case(
        "total-frames-wrong",
        lambda r: edit_info(r, lambda i: i.update(total_frames=99)),
        INFO,
        "is 99, the episodes hold 21",
        "total_frames",
    ),
    Case(
        "episode-missing-from-jsonl",
        lambda r: edit_info(r, lambda i: i.update(total_episodes=3, total_videos=3)),
        EPISODES,
        "total_episodes is 3 but 2 missing",
        "episode_index",
    ),
    Case(
        "task-missing-from-jsonl",
        lambda r: edit_jsonl(r, TASKS, lambda rows: rows.pop()),
        TASKS,
        "total_tasks is 2 but 1 are missing",
        "task_index",
    ),
    Case(
        "episode-task-unknown",
        lambda r: edit_jsonl(r, EPISODES, lambda rows: rows[1].update(tasks=["dance"])),
        EPISODES,
        "'dance' is not in meta/tasks.jsonl",
        "line 2.tasks",
    ),
    Case(
        "episode-task-not-string",
        lambda r: edit_jsonl(r, EPISODES, lambda rows: rows[1].update(tasks=[["push the puck"]])),
        EPISODES,
        "expected {episode_index: int, tasks: [str], length: int}",
    ),
    Case(
        "image-feature",
        lambda r: edit_info(
            r,
            lambda i: i["features"].update(
                {"observation.images.top": {"dtype": "image", "shape": [32, 32, 3], "names": None}}
            ),
        ),
        INFO,
        "images stored in parquet are not supported",
        "features.observation.images.top",
    ),
    Case(
        "action-int-in-info",
        lambda r: edit_info(r, lambda i: i["features"][ACTION].update(dtype="int64")),
        INFO,
        "expected a float vector, got int64",
        f"features.{ACTION}",
    ),
    Case("state-30-dims", set_dims_30, INFO, "30 dims, more than 24", f"features.{STATE}.shape"),
    Case(
        "timestamp-feature-missing",
        lambda r: edit_info(r, lambda i: i["features"].pop("timestamp")),
        INFO,
        "missing",
        "features.timestamp",
    ),
    Case(
        "video-path-missing",
        lambda r: edit_info(r, lambda i: i.pop("video_path")),
        INFO,
        "expected a path template",
        "video_path",
    ),
    Case(
        "data-path-unknown-placeholder",
        lambda r: edit_info(
            r, lambda i: i.update(data_path="data/chunk-{chunk:03d}/episode_{episode_index:06d}.parquet")
        ),
        INFO,
        "bad placeholder 'chunk'",
    ),
    # ---- episode tables
    Case("parquet-missing", lambda r: (r / EP1).unlink(), EP1, "file not found (episode 1 is listed"),
    Case("parquet-truncated", lambda r: truncate(r / EP1), EP1, "not a readable parquet file"),
    Case("episode-length-mismatch", set_length_8, EP1, "9 rows, meta/episodes.jsonl says length 8"),
    Case(
        "state-int64",
        lambda r: edit_column(r, STATE, lambda v: v.astype(np.int64)),
        EP1,
        "dtype int64, info.json says float32",
        STATE,
    ),
    Case(
        "state-7-dims",
        lambda r: edit_column(r, STATE, lambda v: v[:, :7]),
        EP1,
        "shape (7,) per row, info.json says [8]",
        STATE,
    ),
    Case("state-ragged", ragged_state, EP1, "unreadable column", STATE),
    Case("action-column-missing", lambda r: rewrite_parquet(r, {ACTION: None}), EP1, "column missing", ACTION),
    Case(
        "action-nan",
        lambda r: edit_column(r, ACTION, lambda v: v.__setitem__((3, 1), np.nan)),
        EP1,
        "NaN or inf at frame 3",
        ACTION,
    ),
    Case(
        "state-inf",
        lambda r: edit_column(r, STATE, lambda v: v.__setitem__((5, 0), np.inf)),
        EP1,
        "NaN or inf at frame 5",
        STATE,
    ),
    Case(
        "timestamps-not-monotonic",
        lambda r: edit_column(r, "timestamp", lambda v: v.__setitem__(4, v[2])),  # back in time
        EP1,
        "frame 4 is -0.05000 s after the previous",
        "timestamp",
    ),
    Case(
        "timestamps-wrong-spacing",
        lambda r: edit_column(r, "timestamp", lambda v: (np.arange(9) / 10).astype(np.float32)),
        EP1,
        "frame 1 is 0.10000 s after the previous, not 1/fps = 0.05000",
        "timestamp",
    ),
    Case(
        "frame-index-from-1",
        lambda r: edit_column(r, "frame_index", lambda v: v + 1),
        EP1,
        "is not 0, 1, 2",
        "frame_index",
    ),
    Case(
        "episode-index-wrong",
        lambda r: edit_column(r, "episode_index", lambda v: v * 0),
        EP1,
        "is not 1 on every row",
        "episode_index",
    ),
    Case(
        "global-index-restarts",
        lambda r: edit_column(r, "index", lambda v: v - 12),
        EP1,
        "is not 12, 13, ...",
        "index",
        stats_reads_it=False,
    ),
    Case(
        "task-index-unknown",
        lambda r: edit_column(r, "task_index", lambda v: v * 0 + 7),
        EP1,
        "7 is not in meta/tasks.jsonl",
        "task_index",
    ),
    # ---- videos (read lazily by the loader: the affected window fails)
    Case("mp4-missing", lambda r: (r / VID1).unlink(), VID1, "file not found", sample=(1, 0)),
    Case("mp4-short", lambda r: encode(r, frames=5), VID1, "has 5 frames, the episode has 9", sample=(1, 8)),
    Case(
        "mp4-cut-in-half",
        lambda r: truncate(r / VID1),
        VID1,
        ("has no video stream", "cannot be decoded"),  # which one depends on where the cut falls in the index
        sample=(1, 0),
    ),
    Case(
        "mp4-cut-before-index",
        lambda r: truncate(r / VID1, keep=100),  # the media data's start: the index (moov) at the end is lost
        VID1,
        "cannot be decoded",
        sample=(1, 0),
    ),
    Case(
        "mp4-wrong-resolution",
        lambda r: encode(r, frames=9, size=16),
        VID1,
        "is 16x16, info.json says 32x32",
        sample=(1, 0),
    ),
    Case(
        "mp4-wrong-fps",
        lambda r: encode(r, frames=9, fps=10),
        VID1,
        "plays at 10 fps, the dataset at 20",
        sample=(1, 1),
    ),
]
V30_CASES = [
    Case(
        "v30-episodes-file-missing",
        lambda r: (r / V30_EPISODES).unlink(),
        V30_EPISODES,
        "file not found (info.json lists 2 episodes)",
    ),
    Case(
        "v30-episodes-file-truncated", lambda r: truncate(r / V30_EPISODES), V30_EPISODES, "not a readable parquet file"
    ),
    Case("v30-tasks-missing", lambda r: (r / V30_TASKS).unlink(), V30_TASKS, "file not found"),
    Case(
        "v30-video-column-missing",
        lambda r: edit_episodes(r, lambda rows: None, drop=(f"{VIDEO}/to_timestamp",)),
        V30_EPISODES,
        "column missing",
        f"{VIDEO}/to_timestamp",
    ),
    Case(
        "v30-stats-missing",
        lambda r: edit_episodes(r, lambda rows: None, drop=("stats/",)),
        V30_EPISODES,
        "has no stats",
        "stats",
    ),
    Case(
        "v30-span-past-the-video",
        lambda r: shift_span(r, 1.6, 2.05),  # the file is 1.05 s long
        V30_VID,
        "episode 1's span [1.6000, 2.0500) s runs past the video's end (1.0500 s)",
        sample=(1, 0),
    ),
    Case(
        "v30-spans-overlap",
        lambda r: shift_span(r, 0.5, 0.95),
        V30_EPISODES,
        "episode 1's span starts at 0.5000 s, inside episode 0's (ends at 0.6000 s)",
        f"{VIDEO}/from_timestamp",
    ),
    Case(
        "v30-span-too-short",
        lambda r: shift_span(r, 0.6, 0.8),
        V30_EPISODES,
        "its 9 frames at 20 fps take 0.4500 s",
        f"{VIDEO}/to_timestamp",
    ),
    Case(
        "v30-video-short",
        lambda r: encode(r, frames=17, rel=V30_VID),
        V30_VID,
        "episode 1's span [0.6000, 1.0500) s runs past the video's end (0.8500 s)",
        sample=(1, 8),
    ),
    Case(
        "v30-video-half-the-frame-rate",
        lambda r: encode(r, frames=11, fps=10, rel=V30_VID),
        V30_VID,
        "episode 1's span [0.6000, 1.0500) s holds 5 frames, the episode has 9",
        sample=(1, 1),
    ),
    Case(
        "v30-data-file-index-out-of-range",
        lambda r: edit_episodes(r, lambda rows: rows[1].update({"data/file_index": 1000})),
        V30_EPISODES,
        "file index 1000 is out of range (chunks_size is 1000)",
        "data/file_index",
    ),
    Case(
        "v30-data-file-missing",
        lambda r: edit_episodes(r, lambda rows: rows[1].update({"data/file_index": 1})),
        "data/chunk-000/file-001.parquet",
        "file not found (episode 1 is listed in meta/episodes/chunk-000/file-000.parquet)",
    ),
    Case(
        "v30-rows-past-the-file",
        lambda r: keep_rows(r, 18),
        V30_DATA,
        "has 18 rows; episode 1 needs rows 12 to 20",
    ),
    Case(
        "v30-total-frames",
        lambda r: edit_info(r, lambda i: i.update(total_frames=99)),
        INFO,
        "is 99, the episodes hold 21",
        "total_frames",
    ),
    Case(
        "v30-total-episodes",
        lambda r: edit_info(r, lambda i: i.update(total_episodes=3)),
        V30_EPISODES,
        "total_episodes is 3 but 2 missing",
        "episode_index",
    ),
    Case(
        "v30-index-range-not-its-length",
        lambda r: edit_episodes(r, lambda rows: rows[1].update(dataset_to_index=22)),
        V30_EPISODES,
        "episode 1: [12, 22) holds 10 frames, its length is 9",
        "dataset_to_index",
    ),
    Case(
        "v30-index-ranges-not-contiguous",
        lambda r: edit_episodes(r, lambda rows: rows[1].update(dataset_from_index=13, dataset_to_index=22)),
        V30_EPISODES,
        "episode 1 starts at index 13, the episodes before it end at 12",
        "dataset_from_index",
    ),
    Case(
        "v30-index-column-restarts",
        lambda r: rewrite_parquet(r, {"index": np.r_[np.arange(12), np.arange(9)]}, rel=V30_DATA),
        V30_DATA,
        "is not 12, 13, ... (the global frame index) (episode 1, rows 12..)",
        "index",
        stats_reads_it=False,
    ),
    Case(
        "v30-episode-task-unknown",
        lambda r: edit_episodes(r, lambda rows: rows[1].update(tasks=["dance"])),
        V30_EPISODES,
        "episode 1: 'dance' is not in meta/tasks.parquet",
        "tasks",
    ),
    Case(
        "v30-v21-metadata-mixed-in", v21_file_mixed_in, "meta/episodes.jsonl", "a LeRobot v2.1 file in a v3.0 dataset"
    ),
    Case(
        "v30-v21-table-mixed-in",
        lambda r: shutil.copyfile(r / V30_DATA, r / "data/chunk-000/episode_000000.parquet"),
        "data/chunk-000/episode_000000.parquet",
        "a LeRobot v2.1 file in a v3.0 dataset",
    ),
]
V30_CASES = [Case(**{**vars(case), "version": V30}) for case in V30_CASES]
CASES += V30_CASES
BY_ID = {case.id: case for case in CASES}


def says(text: str, message: str | tuple[str, ...]) -> bool:
    return any(m in text for m in ((message,) if isinstance(message, str) else message))


def params(cases: list[Case]) -> list:
    return [pytest.param(case, id=case.id) for case in cases]


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "valid"
    make_dataset(root, lengths=LENGTHS)
    return root


@pytest.fixture(scope="session")
def templates(template, tmp_path_factory) -> dict[str, Path]:
    """The valid dataset in each layout."""
    root = tmp_path_factory.mktemp("corpus") / "valid-v30"
    make_dataset(root, lengths=LENGTHS, version=V30)
    return {V21: template, V30: root}


@pytest.fixture
def fresh(template, tmp_path) -> Path:
    """A fresh copy of the valid dataset."""
    root = tmp_path / "ds"
    shutil.copytree(template, root)
    return root


def corrupt(template: Path, tmp_path: Path, case: Case) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(template, root)
    before = snapshot(root)
    case.corrupt(root)
    assert snapshot(root) != before, f"{case.id} changed nothing"
    return root


def test_the_corpus_is_broad():
    assert len(CASES) >= 20 and len(BY_ID) == len(CASES)
    assert {c.file for c in CASES if c.version == V21} == {INFO, TASKS, EPISODES, EPISODES_STATS, EP1, VID1}
    assert {c.file for c in V30_CASES} >= {INFO, V30_TASKS, V30_EPISODES, V30_DATA, V30_VID}


# ---------------------------------------------------------------------------------------------- validate
@pytest.mark.parametrize("case", params(CASES))
def test_validate_names_the_file_and_changes_nothing(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    _, problems = validate(root)
    assert snapshot(root) == before
    matching = [p for p in problems.errors if Path(p.path) == root / case.file and says(p.message, case.message)]
    assert matching, f"no error on {case.file} saying {case.message!r}: {[str(p) for p in problems.items]}"
    if case.field is not None:
        assert any(p.field == case.field for p in matching), [str(p) for p in matching]
    assert all(str(p).startswith("error: ") and "\n" not in str(p) for p in problems.errors)


@pytest.mark.parametrize("case", params([c for c in CASES if c.video]))
def test_validate_decode_names_the_video(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    _, problems = validate(root, decode=True)
    assert snapshot(root) == before
    assert any(Path(p.path) == root / case.file for p in problems.errors), [str(p) for p in problems.items]


def test_a_valid_dataset_validates_cleanly(fresh):
    before = snapshot(fresh)
    for decode in (False, True):
        meta, problems = validate(fresh, decode=decode)
        assert problems.items == [], [str(p) for p in problems.items]
        assert meta is not None and [ep.length for ep in meta.episodes] == list(LENGTHS)
    assert snapshot(fresh) == before
    data = WindowDataset([DataSource(fresh, "test")], horizon=4, image_size=16)
    assert len(data) == sum(LENGTHS) and data[window(1, 8)]["image_mask"][0]
    assert dataset_stats(load_meta(fresh))["evo1"]["total_frames"] == sum(LENGTHS)
    assert snapshot(fresh) == before


# ---------------------------------------------------------------------------------------------- strict consumers
def assert_names(err: pytest.ExceptionInfo[Evo1Error], root: Path, case: Case) -> None:
    assert err.value.path is not None and Path(err.value.path) == root / case.file, str(err.value)
    assert str(err.value).startswith(f"{root / case.file}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("case", params(CASES))
def test_training_windows_refuse_it(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    source = DataSource(root, "test")
    if case.video:  # tables load up front; videos are read per window
        data = WindowDataset([source], horizon=4, image_size=16)
        data[window(0, 0)]  # the intact episode still loads
        with pytest.raises(Evo1Error) as err:
            data[window(*case.sample)]
    else:
        with pytest.raises(Evo1Error) as err:
            WindowDataset([source], horizon=4, image_size=16)
    assert_names(err, root, case)
    assert snapshot(root) == before


@pytest.mark.parametrize("case", params([c for c in CASES if not c.video and c.stats_reads_it]))
def test_stats_refuse_it(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    with pytest.raises(Evo1Error) as err:
        dataset_stats(load_meta(root))
    assert_names(err, root, case)
    assert snapshot(root) == before


@pytest.mark.parametrize("case", params([c for c in CASES if not c.video]))
def test_pad_refuses_it_and_writes_nothing(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    out = tmp_path / "padded"
    with pytest.raises(Evo1Error) as err:
        pad_dataset(root, out)
    assert_names(err, root, case)
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no copy, no hidden staging left


def test_pad_refuses_a_missing_video(template, tmp_path):
    case = BY_ID["mp4-missing"]
    root = corrupt(template, tmp_path, case)
    with pytest.raises(Evo1Error) as err:
        pad_dataset(root, tmp_path / "padded")
    assert_names(err, root, case)
    assert not (tmp_path / "padded").exists()


# ---------------------------------------------------------------------------------------------- leftovers
def test_leftovers_of_an_interrupted_write_are_warnings(fresh):
    add_leftovers(fresh)
    before = snapshot(fresh)
    meta, problems = validate(fresh)
    assert snapshot(fresh) == before
    assert problems.errors == [], [str(p) for p in problems.errors]
    warned = {(os.path.relpath(p.path, fresh), p.field) for p in problems.warnings}
    assert warned >= {
        (".evo1-staging", None),
        ("data/chunk-000/episode_000002.parquet", None),
        (EPISODES, "line 3"),
        (TASKS, "line 3"),
    }
    assert meta is not None and len(meta.episodes) == 2 and meta.total_frames == sum(LENGTHS)
    assert len(WindowDataset([DataSource(fresh, "test")], horizon=4, image_size=16)) == sum(LENGTHS)
    assert snapshot(fresh) == before


# ---------------------------------------------------------------------------------------------- the CLI
def evo1(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def squashed(text: str) -> str:
    """The text without whitespace (robust to any wrapping of long lines)."""
    return "".join(text.split())


def assert_one_line_error(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr


CLI_CASES = ["parquet-missing", "version-v3.1", "action-nan", "mp4-short", "timestamp-feature-missing"]


@pytest.mark.slow
@pytest.mark.parametrize("case", params([BY_ID[i] for i in CLI_CASES]))
def test_cli_validate_corrupt(case, templates, tmp_path):
    root = corrupt(templates[case.version], tmp_path, case)
    before = snapshot(root)
    result = evo1("dataset", "validate", str(root))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    output = squashed(result.stdout)
    assert squashed(f"error: {root / case.file}: ") in output, result.stdout
    messages = (case.message,) if isinstance(case.message, str) else case.message
    assert any(squashed(m) in output for m in messages), result.stdout
    assert "invalid:" in output
    assert snapshot(root) == before


@pytest.mark.slow
def test_cli_validate_prints_each_problem_on_one_line(template, tmp_path):
    case = BY_ID["parquet-missing"]
    deep = tmp_path / ("a-long-directory-name-" * 4)
    deep.mkdir()
    root = corrupt(template, deep, case)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = evo1("dataset", "validate", str(root), env=env)
    assert result.returncode == 1
    assert any(line.startswith(f"error: {root / case.file}: file not found") for line in result.stdout.splitlines())


@pytest.mark.slow
def test_cli_validate_valid_and_leftovers(fresh):
    result = evo1("dataset", "validate", str(fresh))
    assert result.returncode == 0, result.stdout + result.stderr
    assert squashed("valid: 2 episodes, 21 frames") in squashed(result.stdout)
    add_leftovers(fresh)
    before = snapshot(fresh)
    result = evo1("dataset", "validate", str(fresh), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["episodes"] == 2 and report["frames"] == sum(LENGTHS)
    assert report["problems"] and {p["severity"] for p in report["problems"]} == {"warning"}
    assert snapshot(fresh) == before


@pytest.mark.slow
def test_cli_validate_json_lists_every_problem(template, tmp_path):
    root = corrupt(template, tmp_path, BY_ID["action-nan"])
    BY_ID["mp4-cut-in-half"].corrupt(root)
    result = evo1("dataset", "validate", str(root), "--json")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["episodes"] == 2
    for problem in report["problems"]:
        assert set(problem) == {"severity", "file", "field", "message"}
    errors = {(p["file"], p["field"]) for p in report["problems"] if p["severity"] == "error"}
    assert (str(root / EP1), ACTION) in errors and (str(root / VID1), None) in errors

    result = evo1("dataset", "validate", str(tmp_path / "nowhere"), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["episodes"] is None
    assert [p["file"] for p in report["problems"]] == [str(tmp_path / "nowhere")]


@pytest.mark.slow
def test_cli_info_names_the_file(template, tmp_path):
    root = corrupt(template, tmp_path, BY_ID["version-v3.1"])
    before = snapshot(root)
    result = evo1("dataset", "info", str(root))
    assert_one_line_error(result, root / INFO)
    assert "v3.1" in result.stderr
    assert snapshot(root) == before


@pytest.mark.slow
def test_cli_stats_names_the_file_and_writes_nothing(template, tmp_path):
    root = corrupt(template, tmp_path, BY_ID["action-nan"])
    before = snapshot(root)
    result = evo1("dataset", "stats", str(root))
    assert_one_line_error(result, root / EP1)
    assert "NaN or inf at frame 3" in result.stderr
    assert not (root / EVO1_STATS_PATH).exists()
    assert snapshot(root) == before


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["parquet-truncated", "missing-episodes-stats"])
def test_cli_pad_of_a_corrupt_source_writes_nothing(case_id, template, tmp_path):
    case = BY_ID[case_id]
    root = corrupt(template, tmp_path, case)
    before = snapshot(root)
    out = tmp_path / "padded"
    result = evo1("dataset", "pad", str(root), "--out", str(out))
    assert_one_line_error(result, root / case.file)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no hidden staging directory either
    assert snapshot(root) == before
