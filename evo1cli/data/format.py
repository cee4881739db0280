"""The LeRobot v2.1 dataset layout (what LeRobot 0.3.x reads and writes), and its metadata.

    meta/info.json              fps, features {name: {dtype, shape, names[, info]}}, totals, path templates
    meta/tasks.jsonl            {"task_index": i, "task": "..."} per line
    meta/episodes.jsonl         {"episode_index": e, "tasks": [...], "length": n} per line
    meta/episodes_stats.jsonl   {"episode_index": e, "stats": {feature: {min, max, mean, std, count}}} per line
    data/chunk-{c:03d}/episode_{e:06d}.parquet                 one row per frame
    videos/chunk-{c:03d}/{video_key}/episode_{e:06d}.mp4       one video per camera per episode

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
from evo1cli.model.config import MAX_DIM

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
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
class Episode:
    index: int
    tasks: list[str]
    length: int
    extra: dict[str, Any] = field(default_factory=dict)  # further keys of the episodes.jsonl line, kept

    def to_dict(self) -> dict[str, Any]:
        return {"episode_index": self.index, "tasks": self.tasks, "length": self.length, **self.extra}


@dataclass
class DatasetMeta:
    root: Path
    info: dict[str, Any]
    tasks: dict[int, str]  # task_index -> task
    episodes: list[Episode]  # committed episodes, episode_index == position
    episodes_stats: dict[int, dict[str, Any]]

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

    def data_file(self, episode_index: int) -> Path:
        rel = self.info["data_path"].format(episode_chunk=self.chunk(episode_index), episode_index=episode_index)
        return self.root / rel

    def video_file(self, video_key: str, episode_index: int) -> Path:
        rel = self.info["video_path"].format(
            episode_chunk=self.chunk(episode_index), video_key=video_key, episode_index=episode_index
        )
        return self.root / rel

    def episode_offsets(self) -> list[int]:
        """The global `index` of each episode's first frame."""
        offsets, total = [], 0
        for ep in self.episodes:
            offsets.append(total)
            total += ep.length
        return offsets


def load_meta(root: str | Path, problems: Problems | None = None) -> DatasetMeta:
    """Read and check a v2.1 dataset's metadata. Raises on the first problem unless `problems` collects."""
    problems = problems if problems is not None else Problems(collect=False)
    root = Path(root)
    if not root.is_dir():
        raise Evo1Error("not a directory", path=root)
    info = _load_info(root, problems)
    tasks = _load_tasks(root, info, problems)
    episodes = _load_episodes(root, info, tasks, problems)
    episodes_stats = _load_episodes_stats(root, episodes, problems)
    return DatasetMeta(root, info, tasks, episodes, episodes_stats)


def _load_info(root: Path, problems: Problems) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        hint = " (a LeRobot v2.1 dataset has meta/info.json)" if not (root / "meta").is_dir() else ""
        raise Evo1Error(f"file not found{hint}", path=path)
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Evo1Error(f"not valid JSON ({err})", path=path) from None
    if not isinstance(info, dict):
        raise Evo1Error("expected a JSON object", path=path)
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        if isinstance(version, str) and version.startswith("v3"):
            why = "is a LeRobot v3.0 dataset; evo1 reads and writes v2.1 (LeRobot <= 0.3.x)"
        elif isinstance(version, str) and version.startswith("v2"):
            why = f"is {version}; evo1 reads v2.1 (LeRobot's convert_dataset_v20_to_v21 upgrades v2.0)"
        else:
            why = f"is {version!r}; evo1 reads LeRobot v2.1 datasets"
        raise Evo1Error(why, path=path, field="codebase_version")

    for key in ("fps", "total_episodes", "total_frames", "total_tasks"):
        if not _is_int(info.get(key)) or info[key] < (1 if key == "fps" else 0):
            raise Evo1Error(
                f"expected a {'positive' if key == 'fps' else 'non-negative'} integer", path=path, field=key
            )
    if not _is_int(info.get("chunks_size")) or info["chunks_size"] < 1:
        raise Evo1Error("expected a positive integer", path=path, field="chunks_size")
    _check_template(path, info, "data_path", episode_chunk=0, episode_index=0)
    if info.get("video_path") is not None:
        _check_template(path, info, "video_path", episode_chunk=0, episode_index=0, video_key="camera")
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
    if total_videos is not None and total_videos != len(videos) * info["total_episodes"]:
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
    if not isinstance(shape, list | tuple) or not shape or not all(_is_int(s) and s > 0 for s in shape):
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
    tasks: dict[int, str] = {}
    for number, row in _read_jsonl(path, problems):
        index, task = row.get("task_index"), row.get("task")
        if not _is_int(index) or not isinstance(task, str):
            problems.error(path, f"line {number}", "expected {task_index: int, task: str}")
        elif index in tasks:
            problems.error(path, f"line {number}", f"task_index {index} listed twice")
        elif index >= info["total_tasks"]:
            problems.warn(path, f"line {number}", f"task_index {index} is past total_tasks (an interrupted write)")
        else:
            tasks[index] = task
    missing = sorted(set(range(info["total_tasks"])) - set(tasks))
    if missing:
        problems.error(path, "task_index", f"total_tasks is {info['total_tasks']} but {_few(missing)} are missing")
    return tasks


def _load_episodes(root: Path, info: dict[str, Any], tasks: dict[int, str], problems: Problems) -> list[Episode]:
    path = root / EPISODES_PATH
    known_tasks = set(tasks.values())
    found: dict[int, Episode] = {}
    for number, row in _read_jsonl(path, problems):
        index, ep_tasks, length = row.get("episode_index"), row.get("tasks"), row.get("length")
        where = f"line {number}"
        if (
            not _is_int(index)
            or not _is_int(length)
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
        problems.error(path, "episode_index", f"total_episodes is {info['total_episodes']} but {_few(missing)} missing")
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
        if not _is_int(index) or not isinstance(row.get("stats"), dict):
            problems.error(path, f"line {number}", "expected {episode_index: int, stats: {...}}")
        else:
            stats[index] = row["stats"]
    missing = [ep.index for ep in episodes if ep.index not in stats]
    if missing:
        problems.error(path, "episode_index", f"no stats for episodes {_few(missing)}")
    return stats


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _few(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")
