"""What both LeRobot dataset layouts share: the metadata types, the paths and features common to both, the
problems a check reports, and the `Layout` interface that v21.py and v30.py implement.

`Episode` records where its frames live in either layout: rows [row, row + length) of a data file and a time
span of each camera's video file. A v2.1 episode is the special case of files of its own (file index =
episode index), row 0 and time 0, so every reader serves both layouts through `DatasetMeta.data_file` /
`video_file`. `info.json` is the commit point of every write (it is replaced last): episodes and tasks listed
past its totals are leftovers of an interrupted write and are ignored, with a warning.

This module is the bottom of `evo1cli.data`: it imports no other module of the package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo1cli.errors import Evo1Error

V21, V30 = "v2.1", "v3.0"
VERSIONS = (V21, V30)
DEFAULT_VERSION = V21  # what evo1 writes unless asked for v3.0 (Evo-1's training format)
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100  # LeRobot v3.0's file size limits, when info.json gives none (data_files_size_in_mb,
VIDEO_FILE_MB = 200  # video_files_size_in_mb): a file is closed and the next begun at this size
INFO_PATH = "meta/info.json"
EVO1_STATS_PATH = "meta/evo1_stats.json"  # evo1's own stats; LeRobot's meta/stats.json is never touched
EVO1_PADDING_PATH = "meta/evo1_padding.json"  # native dims of a padded copy
STAGING_DIR = ".evo1-staging"  # an episode being recorded (hidden; removed by the next writer)

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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def few(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")


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
    layout: Layout  # the on-disk version its files follow (info.json's codebase_version)
    root: Path
    info: dict[str, Any]
    tasks: dict[int, str]  # task_index -> task
    episodes: list[Episode]  # committed episodes, episode_index == position
    episodes_stats: dict[int, dict[str, Any]]
    tables: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # tables.read_table's cache

    def __getstate__(self) -> dict[str, Any]:  # a DataLoader pickles it for its workers: not the cache
        return {**self.__dict__, "tables": {}}

    @property
    def version(self) -> str:
        return self.layout.version

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
        return self.info["data_path"].format(**self.layout.places(chunk, file))

    def video_path(self, video_key: str, chunk: int, file: int) -> str:
        return self.info["video_path"].format(video_key=video_key, **self.layout.places(chunk, file))

    def data_file(self, episode_index: int) -> Path:
        return self.root / self.data_path(*self.episodes[episode_index].data)

    def video_file(self, video_key: str, episode_index: int) -> Path:
        span = self.episodes[episode_index].videos[video_key]
        return self.root / self.video_path(video_key, span.chunk, span.file)

    @property
    def tasks_file(self) -> str:
        return self.layout.tasks_path

    @abstractmethod
    def listing(self, episode_index: int) -> str:
        """The metadata file that lists an episode."""
        return self.layout.listing(self.episodes[episode_index])

    def episode_offsets(self) -> list[int]:
        """The global `index` of each episode's first frame."""
        offsets, total = [], 0
        for ep in self.episodes:
            offsets.append(total)
            total += ep.length
        return offsets


# ---------------------------------------------------------------------------------------------- layouts
Groups = list[tuple[tuple[int, int], list[int]]]  # (chunk, file) of each file and the episodes it holds


class Layout(ABC):
    """One on-disk dataset version: everything in which LeRobot v2.1 and v3.0 datasets differ. `format.layout_for`
    maps a version to its layout (v21.LAYOUT, v30.LAYOUT); every other module asks the layout, never the version."""

    version: str  # info.json's codebase_version
    # Each episode has a data file and a video per camera of its own, whole (v2.1); else an episode is a row range
    # and a time span of files that consecutive episodes share (v3.0).
    own_files: bool
    tasks_path: str  # the task list, relative to the root
    markers: tuple[str, ...]  # files and directories (relative, or glob patterns) that only this layout has
    place_names: tuple[str, str]  # the path templates' placeholders of (chunk, file)
    vector_type: str  # the `datasets` feature type of a vector column in its parquet schema

    def __reduce__(self) -> str:
        """Each layout is its module's one `LAYOUT`: pickled by reference, so `is` holds in DataLoader workers."""
        return "LAYOUT"

    def places(self, chunk: int, file: int) -> dict[str, int]:
        """The placeholders of a data or video path template for file (chunk, file)."""
        return dict(zip(self.place_names, (chunk, file), strict=True))

    @abstractmethod
    def listing(self, episode: Episode) -> str:
        """The metadata file that lists `episode`."""

    @abstractmethod
    def convert_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """An info.json of either layout (or a new one's) as this layout writes it, keys in LeRobot's order."""

    @abstractmethod
    def check_info(self, path: Path, info: dict[str, Any], problems: Problems) -> None:
        """The checks of info.json that only this layout makes (`format.load_meta` makes the shared ones)."""

    @abstractmethod
    def load_meta(self, root: Path, info: dict[str, Any], problems: Problems) -> DatasetMeta:
        """Tasks, episodes, their stats and places, each checked (info.json is read and checked)."""

    @abstractmethod
    def write_meta(self, meta: DatasetMeta) -> None:
        """The episode, task and stats metadata, then info.json (the commit point), each file atomically."""

    @abstractmethod
    def place_files(self, meta: DatasetMeta, episode: Episode, staging: Path) -> None:
        """Step 1 of a commit: the staged `episode.parquet` and `<camera>.mp4` files into the dataset, each
        appearing whole; sets `episode`'s places. `meta` does not list `episode` yet."""

    @abstractmethod
    def recover(self, meta: DatasetMeta) -> None:
        """Remove what an interrupted write left past the committed episodes (staging is already gone)."""

    @abstractmethod
    def leftovers(self, meta: DatasetMeta) -> list[Path]:
        """Files an interrupted write left that hold no committed episode (`recover` removes them)."""

    @abstractmethod
    def groups(self, meta: DatasetMeta, size: Callable[[int], int], limit_mb: float) -> Groups:
        """`meta`'s episodes assigned to this layout's files, given each one's size in bytes in a file kind
        (data or one camera's video) and that kind's file size limit."""
