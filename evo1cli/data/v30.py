"""The LeRobot v3.0 layout (LeRobot >= 0.4; what LeRobot 0.6.1 reads and writes): its metadata read and written,
and episodes appended to its shared files.

    meta/info.json            as v2.1 without total_chunks/total_videos, with data_files_size_in_mb and
                              video_files_size_in_mb (the size at which a file is closed and the next begun)
    meta/tasks.parquet        a task_index column; the task string is the pandas index (stored as column `task`)
    meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet    one row per episode: episode_index, tasks, length,
                              data/chunk_index, data/file_index, dataset_from_index, dataset_to_index (its global
                              `index` range, end excluded), videos/<key>/{chunk_index, file_index, from_timestamp,
                              to_timestamp}, stats/<feature>/<stat>, meta/episodes/{chunk_index, file_index}, and
                              any further columns (evo1's seed, success, ...: `Episode.extra`)
    meta/stats.json           stats over all frames (the count-weighted aggregate of the episodes')
    data/chunk-{c:03d}/file-{f:03d}.parquet             consecutive episodes' frames, in global `index` order
    videos/{video_key}/chunk-{c:03d}/file-{f:03d}.mp4   the same episodes' videos, concatenated (remuxed)

An episode's rows start at its dataset_from_index minus that of the first episode in its data file; frame f
of its video is shown at from_timestamp + f / fps. File indices run 0 .. chunks_size - 1, then the chunk
index steps. Episodes past info.json's totals are leftovers of an interrupted write (ignored, with a warning).
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evo1cli.data.reader import episode_rows, read_episode
from evo1cli.data.tables import parquet_bytes, read_parquet, read_table, write_tables
from evo1cli.data.types import (
    DATA_FILE_MB,
    INFO_PATH,
    STAGING_DIR,
    TIMESTAMP_TOLERANCE_S,
    V30,
    VIDEO_FILE_MB,
    DatasetMeta,
    Episode,
    Groups,
    Layout,
    Problems,
    VideoSpan,
    check_tasks,
    few,
    is_int,
)
from evo1cli.data.video import concat_videos, packet_times, video_duration
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_bytes, atomic_write_text

TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
STATS_PATH = "meta/stats.json"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_GLOB = "meta/episodes/*/*.parquet"
# The columns of an episode row that locate it; every other column but stats/... is an extra.
LOCATION_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)
META_COLUMNS = ("meta/episodes/chunk_index", "meta/episodes/file_index")
VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")


class V30Layout(Layout):
    version = V30
    own_files = False
    tasks_path = TASKS_PATH
    markers = (TASKS_PATH, "meta/episodes")
    place_names = ("chunk_index", "file_index")
    vector_type = "List"

    def listing(self, episode: Episode) -> str:
        chunk, file = episode.meta_file
        return EPISODES_PATH.format(chunk_index=chunk, file_index=file)

    def convert_info(self, info: dict[str, Any]) -> dict[str, Any]:
        return _convert_info(info)

    def check_info(self, path: Path, info: dict[str, Any], problems: Problems) -> None:
        for key in ("data_files_size_in_mb", "video_files_size_in_mb"):  # LeRobot's defaults when absent
            if key in info and (not isinstance(info[key], int | float) or info[key] <= 0):
                raise Evo1Error("expected a positive number", path=path, field=key)

    def load_meta(self, root: Path, info: dict[str, Any], problems: Problems) -> DatasetMeta:
        return _load_meta(root, info, problems)

    def write_meta(self, meta: DatasetMeta) -> None:
        _write_meta(meta)

    def place_files(self, meta: DatasetMeta, episode: Episode, staging: Path) -> None:
        """The last data file and each camera's last mp4 are rewritten in staging, their committed rows and
        packets followed by the new episode's (remuxed, not re-encoded), and replace the old ones; past the size
        limits in info.json the episode starts new files instead, as LeRobot does."""
        moves = [_place_data(meta, episode, staging)]
        moves += [_place_video(meta, episode, staging, key) for key in meta.video_keys]
        last = meta.episodes[-1] if meta.episodes else None
        episode.meta_file = last.meta_file if last else (0, 0)
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)

    def recover(self, meta: DatasetMeta) -> None:
        """Files past the last committed episode's, unlisted meta/episodes files, and rows and frames past the
        committed episodes in the last data file and mp4s are removed. Each step only drops leftovers."""
        for path in self.leftovers(meta):
            path.unlink(missing_ok=True)
        listed = {ep.meta_file for ep in meta.episodes}
        for file in meta.root.glob(EPISODES_GLOB):
            if file_place(file) not in listed:
                file.unlink()
        if not meta.episodes:
            return
        n, last = len(meta.episodes), meta.episodes[-1]
        read_episode(meta, n - 1)  # the file new rows join must be sound: else an error naming it, here
        staging = meta.root / STAGING_DIR
        staging.mkdir()
        path, rows = meta.data_file(n - 1), rows_in_file(meta, n - 1)
        if pq.read_metadata(path).num_rows > rows:
            write_tables(staging / "data.parquet", [read_table(meta, path).slice(0, rows)])
            (staging / "data.parquet").replace(path)
        for key in meta.video_keys:
            path, end = meta.video_file(key, n - 1), last.videos[key].end
            if packet_times(path)[1] > end + 1e-3:
                concat_videos([(path, 0.0, end)], staging / "video.mp4")
                (staging / "video.mp4").replace(path)
        shutil.rmtree(staging)

    def leftovers(self, meta: DatasetMeta) -> list[Path]:
        """The data file and mp4s the next episode would start, where they exist."""
        return [path for path in files_after(meta) if path.exists()]

    def groups(self, meta: DatasetMeta, size: Callable[[int], int], limit_mb: float) -> Groups:
        """Consecutive episodes packed into files as LeRobot's converter does: a file takes episodes until the
        next would bring it to `limit_mb`."""
        places, place = [], (0, 0)
        for group in _pack([size(i) for i in range(len(meta.episodes))], limit_mb):
            places.append((place, group))
            place = next_file(place, int(meta.info["chunks_size"]))
        return places


LAYOUT = V30Layout()


def next_file(place: tuple[int, int] | None, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after `place` (the first, (0, 0), after None), as LeRobot's `update_chunk_file_indices`."""
    if place is None:
        return (0, 0)
    chunk, file = place
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def files_after(meta: DatasetMeta) -> list[Path]:
    """The data file and mp4s the next episode would start: leftovers of an interrupted write where they exist."""
    size, last = int(meta.info["chunks_size"]), meta.episodes[-1] if meta.episodes else None
    paths = [meta.root / meta.data_path(*next_file(last.data if last else None, size))]
    for key in meta.video_keys:
        place = (last.videos[key].chunk, last.videos[key].file) if last else None
        paths.append(meta.root / meta.video_path(key, *next_file(place, size)))
    return paths


# ---------------------------------------------------------------------------------------------- info.json
_INFO_ORDER = (
    "codebase_version",
    "fps",
    "features",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_files_size_in_mb",
    "video_files_size_in_mb",
    "data_path",
    "video_path",
    "robot_type",
    "splits",
)


def _convert_info(info: dict[str, Any]) -> dict[str, Any]:
    """A v2.1 (or v3.0) info.json as v3.0, keys in LeRobot 0.6.1's order; other keys kept after them."""
    out = {
        "codebase_version": V30,
        "fps": info["fps"],
        "features": info["features"],
        "total_episodes": info["total_episodes"],
        "total_frames": info["total_frames"],
        "total_tasks": info["total_tasks"],
        "chunks_size": info["chunks_size"],
        "data_files_size_in_mb": info.get("data_files_size_in_mb", DATA_FILE_MB),
        "video_files_size_in_mb": info.get("video_files_size_in_mb", VIDEO_FILE_MB),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if info.get("video_path") else None,
        "robot_type": info.get("robot_type"),
        "splits": info.get("splits", {}),
    }
    skip = {*_INFO_ORDER, "total_chunks", "total_videos"}
    return json.loads(json.dumps(out | {k: v for k, v in info.items() if k not in skip}))


# ---------------------------------------------------------------------------------------------- reading
def _load_meta(root: Path, info: dict[str, Any], problems: Problems) -> DatasetMeta:
    """The rest of a v3.0 dataset's metadata (info.json is read and checked): tasks, episodes and their places."""
    tasks = _load_tasks(root, info, problems)
    meta = DatasetMeta(LAYOUT, root, info, tasks, [], {})
    rows = _listed_rows(root, info, problems)
    found: dict[int, tuple[Path, Episode, dict[str, Any]]] = {}
    for path, meta_file, number, row in rows:
        episode = _episode(meta, path, meta_file, number, row, problems)
        if episode is None:
            continue
        if episode.index in found:
            problems.error(path, "episode_index", f"episode {episode.index} listed twice")
        elif episode.index >= info["total_episodes"]:
            problems.warn(
                path, "episode_index", f"episode {episode.index} is past total_episodes (an interrupted write; ignored)"
            )
        else:
            found[episode.index] = (path, episode, row)
    missing = sorted(set(range(info["total_episodes"])) - set(found))
    if missing:
        where = root / EPISODES_PATH.format(chunk_index=0, file_index=0) if not rows else rows[-1][0]
        problems.error(where, "episode_index", f"total_episodes is {info['total_episodes']} but {few(missing)} missing")
    for index in sorted(found):
        path, episode, row = found[index]
        meta.episodes.append(episode)
        meta.episodes_stats[index] = _unflatten_stats(row)
        if not meta.episodes_stats[index]:
            problems.error(path, "stats", f"episode {index} has no stats/<feature>/<stat> columns")
    _locate_rows(meta, {i: found[i][0] for i in found}, {i: found[i][2] for i in found}, problems)
    if not missing and meta.total_frames != info["total_frames"]:
        problems.error(
            root / INFO_PATH, "total_frames", f"is {info['total_frames']}, the episodes hold {meta.total_frames}"
        )
    stats = root / STATS_PATH
    if stats.is_file():
        try:
            if not isinstance(json.loads(stats.read_text()), dict):
                problems.error(stats, None, "expected a JSON object")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.error(stats, None, f"not valid JSON ({err})")
    elif meta.episodes:
        problems.warn(
            stats, None, "missing (LeRobot's training normalisation reads it; `evo1 dataset convert` writes it)"
        )
    return meta


def _load_tasks(root: Path, info: dict[str, Any], problems: Problems) -> dict[int, str]:
    path = root / TASKS_PATH
    if info["total_tasks"] == 0 and not path.exists():
        return {}
    table = read_parquet(path)
    name = "task"  # the pandas index LeRobot writes; an unnamed index is stored as __index_level_0__
    pandas = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    index_columns = [c for c in pandas.get("index_columns", []) if isinstance(c, str)]
    if name not in table.column_names and index_columns:
        name = index_columns[0]
    for column in ("task_index", name):
        if column not in table.column_names:
            raise Evo1Error("column missing", path=path, field=column if column == "task_index" else "task")
    rows = zip(table["task_index"].to_pylist(), table[name].to_pylist(), strict=True)
    return check_tasks(
        path, [(f"row {n}", index, task) for n, (index, task) in enumerate(rows)], info["total_tasks"], problems
    )


def _listed_rows(
    root: Path, info: dict[str, Any], problems: Problems
) -> list[tuple[Path, tuple[int, int], int, dict[str, Any]]]:
    """(file, its (chunk, file), row number, row) of every meta/episodes file, in file order."""
    files = sorted(root.glob(EPISODES_GLOB))
    if not files and info["total_episodes"] > 0:
        path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        raise Evo1Error(f"file not found (info.json lists {info['total_episodes']} episodes)", path=path)
    rows = []
    for path in files:
        try:
            table = read_parquet(path)
        except Evo1Error as err:
            problems.error(path, None, err.message)
            continue
        missing = [c for c in LOCATION_COLUMNS if c not in table.column_names]
        if missing:
            problems.error(path, missing[0], "column missing")
            continue
        place = file_place(path)
        rows += [(path, place, number, row) for number, row in enumerate(table.to_pylist())]
    return rows


def file_place(path: Path) -> tuple[int, int]:
    """(chunk, file) of .../chunk-CCC/file-FFF.parquet; (0, 0) for other names."""
    try:
        return int(path.parent.name.removeprefix("chunk-")), int(path.stem.removeprefix("file-"))
    except ValueError:
        return (0, 0)


def _episode(
    meta: DatasetMeta, path: Path, meta_file: tuple[int, int], number: int, row: dict[str, Any], problems: Problems
) -> Episode | None:
    """One row of meta/episodes as an `Episode` (its row offset is set later), or None if unusable."""
    index, tasks, length = row.get("episode_index"), row.get("tasks"), row.get("length")
    if not is_int(index) or index < 0:
        problems.error(path, "episode_index", f"row {number}: expected an integer >= 0, got {index!r}")
        return None
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        problems.error(path, "tasks", f"episode {index}: expected a list of task strings")
        return None
    if not is_int(length) or length < 1:
        problems.error(path, "length", f"episode {index}: expected an integer >= 1, got {length!r}")
        return None
    unknown = [t for t in tasks if t not in meta.tasks.values()]
    if unknown and index < meta.info["total_episodes"]:
        problems.error(path, "tasks", f"episode {index}: {unknown[0]!r} is not in {TASKS_PATH}")
    data = _file_of(meta, path, row, index, "data", problems)
    start, stop = row.get("dataset_from_index"), row.get("dataset_to_index")
    if not is_int(start) or not is_int(stop) or start < 0:
        problems.error(path, "dataset_from_index", f"episode {index}: expected integers, got {start!r}, {stop!r}")
        return None
    if stop - start != length:
        problems.error(
            path,
            "dataset_to_index",
            f"episode {index}: [{start}, {stop}) holds {stop - start} frames, its length is {length}",
        )
    videos = _video_spans(meta, path, row, index, length, problems)
    if videos is None or data is None:
        return None
    videos_columns = (f"videos/{k}/{c}" for k in meta.video_keys for c in VIDEO_COLUMNS)
    structural = {*LOCATION_COLUMNS, *META_COLUMNS, *videos_columns}
    # A column holds every episode's value; null stands for a field this episode's metadata lacks.
    extra = {k: v for k, v in row.items() if k not in structural and not k.startswith("stats/") and v is not None}
    return Episode(index, list(tasks), length, extra, data=data, row=0, videos=videos, meta_file=meta_file)


def _file_of(
    meta: DatasetMeta, path: Path, row: dict[str, Any], index: int, prefix: str, problems: Problems
) -> tuple[int, int] | None:
    """The (chunk, file) in an episode row's `prefix`/chunk_index and `prefix`/file_index, or None if invalid."""
    chunks_size = meta.info["chunks_size"]
    chunk, file = row.get(f"{prefix}/chunk_index"), row.get(f"{prefix}/file_index")
    for key, value in ((f"{prefix}/chunk_index", chunk), (f"{prefix}/file_index", file)):
        if not is_int(value) or value < 0:
            problems.error(path, key, f"episode {index}: expected an integer >= 0, got {value!r}")
            return None
    if file >= chunks_size:
        problems.error(
            path,
            f"{prefix}/file_index",
            f"episode {index}: file index {file} is out of range (chunks_size is {chunks_size})",
        )
        return None
    return chunk, file


def _video_spans(
    meta: DatasetMeta, path: Path, row: dict[str, Any], index: int, length: int, problems: Problems
) -> dict[str, VideoSpan] | None:
    """Each camera's span of an episode row, its time checked against the episode's length; None if unusable."""
    videos: dict[str, VideoSpan] = {}
    for key in meta.video_keys:
        columns = [f"videos/{key}/{c}" for c in VIDEO_COLUMNS]
        absent = [c for c in columns if c not in row]
        if absent:
            problems.error(path, absent[0], "column missing")
            return None
        video = _file_of(meta, path, row, index, f"videos/{key}", problems)
        begin, end = row[columns[2]], row[columns[3]]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (begin, end)) or not 0 <= begin < end:
            problems.error(
                path,
                columns[2],
                f"episode {index}: expected 0 <= from_timestamp < to_timestamp, got {begin!r}, {end!r}",
            )
            return None
        needed = length / meta.fps
        if abs((end - begin) - needed) > 1 / meta.fps + TIMESTAMP_TOLERANCE_S:
            problems.error(
                path,
                columns[3],
                f"episode {index}: its span [{begin:.4f}, {end:.4f}) s is "
                f"{end - begin:.4f} s, its {length} frames at {meta.fps} fps take {needed:.4f} s",
            )
        if video is None:
            return None
        videos[key] = VideoSpan(video[0], video[1], float(begin), float(end))
    return videos


def _locate_rows(
    meta: DatasetMeta, listed_in: dict[int, Path], rows: dict[int, dict[str, Any]], problems: Problems
) -> None:
    """Row offsets inside the data files, and the checks that span episodes: contiguous global indices,
    consecutive episodes per data file, no two spans overlapping in one video file."""
    total = 0
    first_of: dict[tuple[int, int], int] = {}  # data file -> global index of its first row
    previous: tuple[int, int] | None = None
    spans: dict[tuple[str, int, int], list[tuple[float, float, int]]] = {}
    for episode in meta.episodes:
        path, start = listed_in[episode.index], rows[episode.index]["dataset_from_index"]
        if start != total:
            problems.error(
                path,
                "dataset_from_index",
                f"episode {episode.index} starts at index {start}, the episodes before it end at {total}",
            )
        if episode.data != previous and episode.data in first_of:
            problems.error(
                path,
                "data/file_index",
                f"episode {episode.index} is in data file {episode.data} "
                "again after another file: a file holds consecutive episodes",
            )
        first_of.setdefault(episode.data, start)
        episode.row = start - first_of[episode.data]
        previous, total = episode.data, total + episode.length
        for key, span in episode.videos.items():
            spans.setdefault((key, span.chunk, span.file), []).append((span.start, span.end, episode.index))
    for (key, chunk, file), listed in spans.items():
        listed.sort()
        for (_, end, before), (start, _, index) in itertools.pairwise(listed):
            if start < end - TIMESTAMP_TOLERANCE_S:
                problems.error(
                    listed_in[index],
                    f"videos/{key}/from_timestamp",
                    f"episode {index}'s span starts at "
                    f"{start:.4f} s, inside episode {before}'s (ends at {end:.4f} s) in "
                    f"{meta.video_path(key, chunk, file)}",
                )


def _unflatten_stats(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """stats/<feature>/<stat> columns -> {feature: {stat: value}} (the v2.1 episodes_stats shape)."""
    stats: dict[str, dict[str, Any]] = {}
    for column, value in row.items():
        if column.startswith("stats/") and value is not None:
            feature, _, stat = column.removeprefix("stats/").rpartition("/")
            stats.setdefault(feature, {})[stat] = value
    return stats


# ---------------------------------------------------------------------------------------------- writing
def _write_meta(meta: DatasetMeta) -> None:
    """meta/episodes files, tasks.parquet, stats.json, then info.json (the commit point), each atomically."""
    root, info = meta.root, meta.info
    by_file: dict[tuple[int, int], list[Episode]] = {}
    for episode in meta.episodes:
        by_file.setdefault(episode.meta_file, []).append(episode)
    offsets = dict(zip((ep.index for ep in meta.episodes), meta.episode_offsets(), strict=True))
    for (chunk, file), episodes in by_file.items():
        table = episodes_table(meta, episodes, offsets)
        atomic_write_bytes(root / EPISODES_PATH.format(chunk_index=chunk, file_index=file), parquet_bytes(table))
    if meta.tasks:
        atomic_write_bytes(root / TASKS_PATH, parquet_bytes(tasks_table(meta.tasks)))
    else:
        (root / TASKS_PATH).unlink(missing_ok=True)  # an interrupted first episode's
    if meta.episodes:
        stats = aggregate_stats([meta.episodes_stats[ep.index] for ep in meta.episodes])
        atomic_write_text(root / STATS_PATH, json.dumps(stats, indent=4) + "\n")
    else:
        (root / STATS_PATH).unlink(missing_ok=True)
    info["total_episodes"] = len(meta.episodes)
    info["total_frames"] = meta.total_frames
    info["total_tasks"] = len(meta.tasks)
    info["splits"] = {"train": f"0:{len(meta.episodes)}"} if meta.episodes else {}
    atomic_write_text(root / INFO_PATH, json.dumps(info, indent=4) + "\n")


def tasks_table(tasks: dict[int, str]) -> pa.Table:
    """meta/tasks.parquet: task_index, with the task string as the pandas index (what LeRobot reads back)."""
    order = sorted(tasks)
    pandas = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())], metadata={"pandas": json.dumps(pandas)})
    return pa.table({"task_index": order, "task": [tasks[i] for i in order]}, schema=schema)


def episodes_table(meta: DatasetMeta, episodes: list[Episode], offsets: dict[int, int]) -> pa.Table:
    """Rows of meta/episodes, columns in LeRobot 0.6.1's order, evo1's extras after the locations."""
    rows = []
    for ep in episodes:
        row: dict[str, Any] = {
            "episode_index": ep.index,
            "tasks": ep.tasks,
            "length": ep.length,
            "data/chunk_index": ep.data[0],
            "data/file_index": ep.data[1],
            "dataset_from_index": offsets[ep.index],
            "dataset_to_index": offsets[ep.index] + ep.length,
        }
        for key in meta.video_keys:
            span = ep.videos[key]
            row[f"videos/{key}/chunk_index"] = span.chunk
            row[f"videos/{key}/file_index"] = span.file
            row[f"videos/{key}/from_timestamp"] = float(span.start)
            row[f"videos/{key}/to_timestamp"] = float(span.end)
        row |= ep.extra
        for feature, stats in meta.episodes_stats[ep.index].items():
            row |= {f"stats/{feature}/{stat}": _plain(value) for stat, value in stats.items()}
        row |= {"meta/episodes/chunk_index": ep.meta_file[0], "meta/episodes/file_index": ep.meta_file[1]}
        rows.append(row)
    names = list(dict.fromkeys(k for row in rows for k in row))
    arrays = []
    for name in names:
        try:
            arrays.append(pa.array([row.get(name) for row in rows]))
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise Evo1Error(f"its values across episodes cannot form one parquet column ({err})", field=name) from None
    return pa.Table.from_arrays(arrays, names=names)


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def aggregate_stats(episodes: Iterable[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Stats over all frames from per-episode stats, as LeRobot 0.6.1's `aggregate_stats`: min of mins, max of
    maxes, count-weighted mean, pooled std, summed count, and count-weighted means of the quantiles q01 ... q99."""
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for stats in episodes:
        for feature, values in stats.items():
            by_feature.setdefault(feature, []).append(values)
    out: dict[str, dict[str, Any]] = {}
    for feature, items in by_feature.items():
        counts = np.array([np.asarray(s["count"]).reshape(-1)[0] for s in items], dtype=np.float64)
        means = np.stack([np.asarray(s["mean"], np.float64) for s in items])
        weights = counts.reshape(-1, *([1] * (means.ndim - 1)))
        total = counts.sum()
        mean = (means * weights).sum(axis=0) / total
        variance = (
            (np.stack([np.asarray(s["std"], np.float64) for s in items]) ** 2 + (means - mean) ** 2) * weights
        ).sum(axis=0) / total
        result = {
            "min": np.min(np.stack([np.asarray(s["min"]) for s in items]), axis=0),
            "max": np.max(np.stack([np.asarray(s["max"]) for s in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": np.array([int(total)]),
        }
        for key in items[0]:
            if key[:1] == "q" and key[1:].isdigit() and all(key in s for s in items):
                values = np.stack([np.asarray(s[key], np.float64) for s in items])
                result[key] = (values * weights).sum(axis=0) / total
        out[feature] = {k: v.tolist() for k, v in result.items()}
    return out


# ---------------------------------------------------------------------------------------------- placing files
def episodes_in_file(meta: DatasetMeta, place: tuple[int, int]) -> list[int]:
    return [i for i, ep in enumerate(meta.episodes) if ep.data == place]


def rows_in_file(meta: DatasetMeta, i: int) -> int:
    """The committed rows of episode i's data file."""
    return sum(meta.episodes[j].length for j in episodes_in_file(meta, meta.episodes[i].data))


def _committed_rows(meta: DatasetMeta, i: int, schema: pa.Schema) -> pa.Table:
    """Episode i's committed rows, in `schema` (a LeRobot converter's list<float> becomes a fixed-size list)."""
    table = episode_rows(meta, i)
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, KeyError) as err:
        raise Evo1Error(f"its columns differ from this collection's ({err})", path=meta.data_file(i)) from None


def _place_data(meta: DatasetMeta, episode: Episode, staging: Path) -> tuple[Path, Path]:
    """The staged episode.parquet appended to the last data file (rewritten whole in staging), or starting the next
    one past the size limit; returns the move (staged file, its final path)."""
    size, last = int(meta.info["chunks_size"]), meta.episodes[-1] if meta.episodes else None
    staged = staging / "episode.parquet"
    limit = float(meta.info.get("data_files_size_in_mb", DATA_FILE_MB)) * 2**20
    old = meta.data_file(len(meta.episodes) - 1) if last else None
    tables = [pq.read_table(staged)]
    if last is not None and old is not None and old.stat().st_size + staged.stat().st_size < limit:
        episode.data, episode.row = last.data, rows_in_file(meta, len(meta.episodes) - 1)
        tables = [_committed_rows(meta, i, tables[0].schema) for i in episodes_in_file(meta, last.data)] + tables
    else:
        episode.data, episode.row = next_file(last.data if last else None, size), 0
    write_tables(staged.with_name("data.parquet"), tables)
    return staged.with_name("data.parquet"), meta.root / meta.data_path(*episode.data)


def _place_video(meta: DatasetMeta, episode: Episode, staging: Path, key: str) -> tuple[Path, Path]:
    """The staged `<key>.mp4` remuxed after the camera's last mp4, or starting the next one past the size limit."""
    size, last = int(meta.info["chunks_size"]), meta.episodes[-1] if meta.episodes else None
    limit = float(meta.info.get("video_files_size_in_mb", VIDEO_FILE_MB)) * 2**20
    new = staging / f"{key}.mp4"
    if last is not None:
        span = last.videos[key]
        old = meta.video_file(key, len(meta.episodes) - 1)
        if old.stat().st_size + new.stat().st_size < limit:
            joined = staging / f"{key}.joined.mp4"
            (start, end) = concat_videos([(old, 0.0, span.end), (new, 0.0, None)], joined)[1]
            episode.videos[key] = VideoSpan(span.chunk, span.file, start, end)
            return joined, old
    place = next_file((last.videos[key].chunk, last.videos[key].file) if last else None, size)
    episode.videos[key] = VideoSpan(*place, 0.0, video_duration(new))
    return new, meta.root / meta.video_path(key, *place)


def _pack(sizes: list[int], limit_mb: float) -> list[list[int]]:
    """Consecutive items into groups, a new group when the next item would bring one to `limit_mb` (LeRobot's rule)."""
    groups: list[list[int]] = []
    total = 0.0
    for i, size in enumerate(sizes):
        if groups and groups[-1] and total + size / 2**20 < limit_mb:
            groups[-1].append(i)
            total += size / 2**20
        else:
            groups.append([i])
            total = size / 2**20
    return groups
