"""Dataset metadata: one type for both LeRobot layouts evo1 reads, and the v2.1 layout (LeRobot 0.3.x) itself.

    meta/info.json              fps, features {name: {dtype, shape, names[, info]}}, totals, path templates
    meta/tasks.jsonl            {"task_index": i, "task": "..."} per line
    meta/episodes.jsonl         {"episode_index": e, "tasks": [...], "length": n} per line
    meta/episodes_stats.jsonl   {"episode_index": e, "stats": {feature: {min, max, mean, std, count}}} per line
    data/chunk-{c:03d}/episode_{e:06d}.parquet                 one row per frame
    videos/chunk-{c:03d}/{video_key}/episode_{e:06d}.mp4       one video per camera per episode

The v3.0 layout (LeRobot >= 0.4, v30.py) keeps many episodes per parquet and mp4 file. `Episode` records
where its frames live in either: rows [row, row + length) of a data file and a time span of each camera's
video file. A v2.1 episode is the special case of files of its own (file index = episode index), row 0 and
time 0, so every reader serves both layouts through `DatasetMeta.data_file` / `video_file`.

`info.json` is the commit point of every write (it is replaced last): episodes and tasks listed past its
totals are leftovers of an interrupted write and are ignored, with a warning.

Metadata is read by `load_meta`, which either raises on the first problem or, given a `Problems`, records
every problem and goes on (that is what `evo1 dataset validate` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_text
from evo1cli.model.config import MAX_DIM

V21, V30 = "v2.1", "v3.0"
VERSIONS = (V21, V30)
CODEBASE_VERSION = V21  # what evo1 writes unless asked for v3.0 (Evo-1's training format)
CHUNKS_SIZE = 1000
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# v3.0 (v30.py reads and writes them)
V30_TASKS_PATH = "meta/tasks.parquet"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_STATS_PATH = "meta/stats.json"
V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EVO1_STATS_PATH = "meta/evo1_stats.json"  # evo1's own stats; LeRobot's meta/stats.json is never touched
EVO1_PADDING_PATH = "meta/evo1_padding.json"  # native dims of a padded copy
STAGING_DIR = ".evo1-staging"  # an episode being recorded (hidden; removed by the next writer)

STATE, ACTION = "observation.state", "action"
# The bookkeeping columns of every frame, as LeRobot declares them.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's default tolerance between timestamps and 1/fps


def vector_feature(dim: int, names: list[str] | None = None, dtype: str = "float32") -> dict[str, Any]:
    return {"dtype": dtype, "shape": [dim], "names": names or [f"{i}" for i in range(dim)]}


def video_feature(height: int, width: int, info: dict[str, Any]) -> dict[str, Any]:
    return {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"], "info": info}


def new_info(fps: int, features: dict[str, dict[str, Any]], robot_type: str | None) -> dict[str, Any]:
    """The info.json of an empty dataset (the same keys, in the same order, as LeRobot writes)."""
    uses_videos = any(ft["dtype"] == "video" for ft in features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "total_videos": 0,
        "total_chunks": 0,
        "chunks_size": CHUNKS_SIZE,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if uses_videos else None,
        "features": {**features, **INDEX_FEATURES},
    }


# ---------------------------------------------------------------------------------------------- problems
@dataclass
class Problem:
    path: str
    field: str | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning" if self.warning else "error"
        return f"{kind}: " + ": ".join(p for p in (self.path, self.field, self.message) if p)


@dataclass
class Problems:
    """Collects problems; without `collect`, the first error is raised as an `Evo1Error`."""

    collect: bool = True
    items: list[Problem] = field(default_factory=list)

    def error(self, path: str | Path, field: str | None, message: str) -> None:
        if not self.collect:
            raise Evo1Error(message, path=path, field=field)
        self.items.append(Problem(str(path), field, message))

    def warn(self, path: str | Path, field: str | None, message: str) -> None:
        self.items.append(Problem(str(path), field, message, warning=True))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.warning]


# ---------------------------------------------------------------------------------------------- metadata
@dataclass
class VideoSpan:
    """An episode's frames of one camera: [start, end) seconds of video file (chunk, file)."""

    chunk: int
    file: int
    start: float = 0.0  # LeRobot's from_timestamp: frame f is shown at start + f / fps
    end: float = 0.0  # to_timestamp


@dataclass
class Episode:
    index: int
    tasks: list[str]
    length: int
    extra: dict[str, Any] = field(default_factory=dict)  # further keys of its metadata (seed, success, ...), kept
    # Where its frames live: rows [row, row + length) of data file (chunk, file), and a span per camera.
    data: tuple[int, int] = (0, 0)
    row: int = 0
    videos: dict[str, VideoSpan] = field(default_factory=dict)
    meta_file: tuple[int, int] = (0, 0)  # v3.0: the meta/episodes file that lists it

    def to_dict(self) -> dict[str, Any]:
        return {"episode_index": self.index, "tasks": self.tasks, "length": self.length, **self.extra}


@dataclass
class DatasetMeta:
    root: Path
    info: dict[str, Any]
    tasks: dict[int, str]  # task_index -> task
    episodes: list[Episode]  # committed episodes, episode_index == position
    episodes_stats: dict[int, dict[str, Any]]
    tables: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # reader.py's cache

    def __getstate__(self) -> dict[str, Any]:  # a DataLoader pickles it for its workers: not the cache
        return {**self.__dict__, "tables": {}}

    @property
    def version(self) -> str:
        return self.info["codebase_version"]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] == "video"]

    @property
    def total_frames(self) -> int:
        return sum(ep.length for ep in self.episodes)

    def dim(self, key: str) -> int:
        return int(self.features[key]["shape"][0])

    def chunk(self, episode_index: int) -> int:
        return episode_index // int(self.info["chunks_size"])

    def data_path(self, chunk: int, file: int) -> str:
        """A data file's path relative to the root (v2.1: `file` is the episode index)."""
        if self.version == V30:
            return self.info["data_path"].format(chunk_index=chunk, file_index=file)
        return self.info["data_path"].format(episode_chunk=chunk, episode_index=file)

    def video_path(self, video_key: str, chunk: int, file: int) -> str:
        if self.version == V30:
            return self.info["video_path"].format(video_key=video_key, chunk_index=chunk, file_index=file)
        return self.info["video_path"].format(video_key=video_key, episode_chunk=chunk, episode_index=file)

    def data_file(self, episode_index: int) -> Path:
        return self.root / self.data_path(*self.episodes[episode_index].data)

    def video_file(self, video_key: str, episode_index: int) -> Path:
        span = self.episodes[episode_index].videos[video_key]
        return self.root / self.video_path(video_key, span.chunk, span.file)

    @property
    def tasks_file(self) -> str:
        return V30_TASKS_PATH if self.version == V30 else TASKS_PATH

    def listing(self, episode_index: int) -> str:
        """The metadata file that lists an episode."""
        if self.version == V30:
            chunk, file = self.episodes[episode_index].meta_file
            return V30_EPISODES_PATH.format(chunk_index=chunk, file_index=file)
        return EPISODES_PATH

    def episode_offsets(self) -> list[int]:
        """The global `index` of each episode's first frame."""
        offsets, total = [], 0
        for ep in self.episodes:
            offsets.append(total)
            total += ep.length
        return offsets


def locate_v21(meta: DatasetMeta, episode: Episode) -> None:
    """Set a v2.1 episode's location: files of its own, row 0, time 0."""
    chunk = meta.chunk(episode.index)
    episode.data, episode.row = (chunk, episode.index), 0
    episode.videos = {k: VideoSpan(chunk, episode.index, 0.0, episode.length / meta.fps) for k in meta.video_keys}


def load_meta(root: str | Path, problems: Problems | None = None) -> DatasetMeta:
    """Read and check a v2.1 or v3.0 dataset's metadata. Raises on the first problem unless `problems` collects."""
    problems = problems if problems is not None else Problems(collect=False)
    root = Path(root)
    if not root.is_dir():
        raise Evo1Error("not a directory", path=root)
    info = _load_info(root, problems)
    _check_foreign_files(root, info["codebase_version"], problems)
    if info["codebase_version"] == V30:
        from evo1cli.data import v30  # v30.py builds on the types above

        return v30.load_meta(root, info, problems)
    tasks = _load_tasks(root, info, problems)
    episodes = _load_episodes(root, info, tasks, problems)
    episodes_stats = _load_episodes_stats(root, episodes, problems)
    meta = DatasetMeta(root, info, tasks, episodes, episodes_stats)
    for episode in episodes:
        locate_v21(meta, episode)
    return meta


# The files that tell the layouts apart: one of the other layout's next to info.json is a mixed-up directory.
_V21_FILES = ("meta/tasks.jsonl", "meta/episodes.jsonl", "meta/episodes_stats.jsonl")
_V30_FILES = (V30_TASKS_PATH, "meta/episodes")


def _check_foreign_files(root: Path, version: str, problems: Problems) -> None:
    foreign = [root / rel for rel in (_V21_FILES if version == V30 else _V30_FILES)]
    if version == V30:
        foreign += sorted(root.glob("data/*/episode_*.parquet"))[:1]
    for path in foreign:
        if path.exists():
            other = V21 if version == V30 else V30
            problems.error(
                path,
                None,
                f"a LeRobot {other} file in a {version} dataset (info.json says {version}): a mixed-up "
                "or half-converted directory; move it away or convert with `evo1 dataset convert`",
            )


def _load_info(root: Path, problems: Problems) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        hint = " (a LeRobot dataset has meta/info.json)" if not (root / "meta").is_dir() else ""
        raise Evo1Error(f"file not found{hint}", path=path)
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Evo1Error(f"not valid JSON ({err})", path=path) from None
    if not isinstance(info, dict):
        raise Evo1Error("expected a JSON object", path=path)
    version = info.get("codebase_version")
    if version not in VERSIONS:
        if isinstance(version, str) and version.startswith("v2"):
            why = f"is {version}; evo1 reads v2.1 and v3.0 (LeRobot's convert_dataset_v20_to_v21 upgrades v2.0)"
        else:
            why = f"is {version!r}; evo1 reads LeRobot v2.1 (LeRobot 0.3.x) and v3.0 (LeRobot >= 0.4) datasets"
        raise Evo1Error(why, path=path, field="codebase_version")

    for key in ("fps", "total_episodes", "total_frames", "total_tasks"):
        if not is_int(info.get(key)) or info[key] < (1 if key == "fps" else 0):
            raise Evo1Error(
                f"expected a {'positive' if key == 'fps' else 'non-negative'} integer", path=path, field=key
            )
    if not is_int(info.get("chunks_size")) or info["chunks_size"] < 1:
        raise Evo1Error("expected a positive integer", path=path, field="chunks_size")
    if version == V30:
        for key in ("data_files_size_in_mb", "video_files_size_in_mb"):  # LeRobot's defaults when absent
            if key in info and (not isinstance(info[key], int | float) or info[key] <= 0):
                raise Evo1Error("expected a positive number", path=path, field=key)
        places = {"chunk_index": 0, "file_index": 0}
    else:
        places = {"episode_chunk": 0, "episode_index": 0}
    _check_template(path, info, "data_path", **places)
    if info.get("video_path") is not None:
        _check_template(path, info, "video_path", **places, video_key="camera")
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        raise Evo1Error("expected an object of features", path=path, field="features")
    for name, ft in features.items():
        _check_feature(path, name, ft)
    for name, spec in INDEX_FEATURES.items():
        if name not in features:
            problems.error(path, f"features.{name}", "missing (every LeRobot dataset has it)")
        elif features[name]["dtype"] != spec["dtype"]:
            problems.error(path, f"features.{name}.dtype", f"expected {spec['dtype']}, got {features[name]['dtype']}")
    for name in (STATE, ACTION):
        if name not in features:
            problems.error(path, f"features.{name}", "missing (evo1 trains on observation.state and action)")
            continue
        ft = features[name]
        if ft["dtype"] not in ("float32", "float64") or len(ft["shape"]) != 1:
            problems.error(path, f"features.{name}", f"expected a float vector, got {ft['dtype']} {ft['shape']}")
        elif ft["shape"][0] > MAX_DIM:
            problems.error(path, f"features.{name}.shape", f"{ft['shape'][0]} dims, more than {MAX_DIM}")
    videos = [k for k, ft in features.items() if ft["dtype"] == "video"]
    if videos and not isinstance(info.get("video_path"), str):
        problems.error(path, "video_path", "expected a path template (the dataset has video features)")
    total_videos = info.get("total_videos")
    if version == V21 and total_videos is not None and total_videos != len(videos) * info["total_episodes"]:
        problems.error(path, "total_videos", f"is {total_videos}, expected {len(videos)} x total_episodes")
    return info


def _check_template(path: Path, info: dict[str, Any], key: str, **fields: Any) -> None:
    template = info.get(key)
    if not isinstance(template, str):
        raise Evo1Error("expected a path template", path=path, field=key)
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as err:
        raise Evo1Error(f"bad placeholder {err} (expected {{{', '.join(fields)}}})", path=path, field=key) from None


def _check_feature(path: Path, name: str, ft: Any) -> None:
    where = f"features.{name}"
    if not isinstance(ft, dict):
        raise Evo1Error("expected an object", path=path, field=where)
    dtype, shape = ft.get("dtype"), ft.get("shape")
    if dtype == "image":
        raise Evo1Error("images stored in parquet are not supported; store cameras as video", path=path, field=where)
    if dtype not in (*NUMERIC_DTYPES, "video", "string"):
        raise Evo1Error(f"unknown dtype {dtype!r}", path=path, field=f"{where}.dtype")
    if not isinstance(shape, list | tuple) or not shape or not all(is_int(s) and s > 0 for s in shape):
        raise Evo1Error("expected a list of positive integers", path=path, field=f"{where}.shape")
    if dtype == "video" and (len(shape) != 3 or shape[2] != 3):
        raise Evo1Error(f"expected [height, width, 3], got {list(shape)}", path=path, field=f"{where}.shape")


def _read_jsonl(path: Path, problems: Problems) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise Evo1Error("file not found", path=path)
    rows = []
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise Evo1Error(f"not UTF-8 text ({err.reason} at byte {err.start})", path=path) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.error(path, f"line {number}", f"not valid JSON ({err.msg})")
            continue
        if not isinstance(row, dict):
            problems.error(path, f"line {number}", "expected a JSON object")
            continue
        rows.append((number, row))
    return rows


def _load_tasks(root: Path, info: dict[str, Any], problems: Problems) -> dict[int, str]:
    path = root / TASKS_PATH
    rows = [(f"line {n}", row.get("task_index"), row.get("task")) for n, row in _read_jsonl(path, problems)]
    return check_tasks(path, rows, info["total_tasks"], problems)


def check_tasks(path: Path, rows: list[tuple[str, Any, Any]], total_tasks: int, problems: Problems) -> dict[int, str]:
    """task_index -> task from (where, task_index, task) rows, each checked; rows past `total_tasks` are ignored."""
    tasks: dict[int, str] = {}
    for where, index, task in rows:
        if not is_int(index) or not isinstance(task, str):
            problems.error(path, where, "expected {task_index: int, task: str}")
        elif index in tasks:
            problems.error(path, where, f"task_index {index} listed twice")
        elif index >= total_tasks:
            problems.warn(path, where, f"task_index {index} is past total_tasks (an interrupted write)")
        else:
            tasks[index] = task
    missing = sorted(set(range(total_tasks)) - set(tasks))
    if missing:
        problems.error(path, "task_index", f"total_tasks is {total_tasks} but {few(missing)} are missing")
    return tasks


def _load_episodes(root: Path, info: dict[str, Any], tasks: dict[int, str], problems: Problems) -> list[Episode]:
    path = root / EPISODES_PATH
    known_tasks = set(tasks.values())
    found: dict[int, Episode] = {}
    for number, row in _read_jsonl(path, problems):
        index, ep_tasks, length = row.get("episode_index"), row.get("tasks"), row.get("length")
        where = f"line {number}"
        if (
            not is_int(index)
            or not is_int(length)
            or not isinstance(ep_tasks, list)
            or not all(isinstance(t, str) for t in ep_tasks)
        ):
            problems.error(path, where, "expected {episode_index: int, tasks: [str], length: int}")
        elif index in found:
            problems.error(path, where, f"episode_index {index} listed twice")
        elif index >= info["total_episodes"]:
            problems.warn(path, where, f"episode {index} is past total_episodes (an interrupted write; ignored)")
        elif length < 1:
            problems.error(path, f"{where}.length", f"episode {index} has length {length}")
        else:
            unknown = [t for t in ep_tasks if t not in known_tasks]
            if unknown:
                problems.error(path, f"{where}.tasks", f"{unknown[0]!r} is not in {TASKS_PATH}")
            extra = {k: v for k, v in row.items() if k not in ("episode_index", "tasks", "length")}
            found[index] = Episode(index, list(ep_tasks), length, extra)
    missing = sorted(set(range(info["total_episodes"])) - set(found))
    if missing:
        problems.error(path, "episode_index", f"total_episodes is {info['total_episodes']} but {few(missing)} missing")
    episodes = [found[i] for i in sorted(found)]
    total = sum(ep.length for ep in episodes)
    if not missing and total != info["total_frames"]:
        problems.error(root / INFO_PATH, "total_frames", f"is {info['total_frames']}, the episodes hold {total}")
    return episodes


def _load_episodes_stats(root: Path, episodes: list[Episode], problems: Problems) -> dict[int, dict[str, Any]]:
    path = root / EPISODES_STATS_PATH
    stats: dict[int, dict[str, Any]] = {}
    for number, row in _read_jsonl(path, problems):
        index = row.get("episode_index")
        if not is_int(index) or not isinstance(row.get("stats"), dict):
            problems.error(path, f"line {number}", "expected {episode_index: int, stats: {...}}")
        else:
            stats[index] = row["stats"]
    missing = [ep.index for ep in episodes if ep.index not in stats]
    if missing:
        problems.error(path, "episode_index", f"no stats for episodes {few(missing)}")
    return stats


def write_meta_v21(meta: DatasetMeta) -> None:
    """episodes_stats, tasks, episodes, then info.json (the commit point), each atomically, into `meta.root`."""
    root = meta.root
    stats = [{"episode_index": ep.index, "stats": meta.episodes_stats[ep.index]} for ep in meta.episodes]
    atomic_write_text(root / EPISODES_STATS_PATH, _jsonl(stats))
    atomic_write_text(root / TASKS_PATH, _jsonl([{"task_index": i, "task": t} for i, t in sorted(meta.tasks.items())]))
    atomic_write_text(root / EPISODES_PATH, _jsonl([ep.to_dict() for ep in meta.episodes]))
    info = meta.info
    info["total_episodes"] = len(meta.episodes)
    info["total_frames"] = meta.total_frames
    info["total_tasks"] = len(meta.tasks)
    info["total_videos"] = len(meta.video_keys) * len(meta.episodes)
    info["total_chunks"] = meta.chunk(len(meta.episodes) - 1) + 1 if meta.episodes else 0
    info["splits"] = {"train": f"0:{len(meta.episodes)}"} if meta.episodes else {}
    atomic_write_text(root / INFO_PATH, json.dumps(info, indent=4) + "\n")


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def few(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")
