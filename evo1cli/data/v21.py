"""The LeRobot v2.1 layout (LeRobot 0.3.x; what Evo-1 trains on): its metadata read and written, its files.

    meta/info.json              fps, features {name: {dtype, shape, names[, info]}}, totals, path templates
    meta/tasks.jsonl            {"task_index": i, "task": "..."} per line
    meta/episodes.jsonl         {"episode_index": e, "tasks": [...], "length": n} per line
    meta/episodes_stats.jsonl   {"episode_index": e, "stats": {feature: {min, max, mean, std, count}}} per line
    data/chunk-{c:03d}/episode_{e:06d}.parquet                 one row per frame
    videos/chunk-{c:03d}/{video_key}/episode_{e:06d}.mp4       one video per camera per episode

Every episode has files of its own: chunk = episode index // chunks_size, file = episode index, row 0, time 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evo1cli.data.types import (
    DATA_FILE_MB,
    INFO_PATH,
    V21,
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
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_text

TASKS_PATH = "meta/tasks.jsonl"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
_EPISODE_FILES = ("data/*/episode_*.parquet", "videos/*/*/episode_*.mp4")
_INFO_ORDER = (
    "codebase_version",
    "robot_type",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "total_videos",
    "total_chunks",
    "chunks_size",
    "fps",
    "splits",
    "data_path",
    "video_path",
    "features",
)


class V21Layout(Layout):
    version = V21
    own_files = True
    tasks_path = TASKS_PATH
    markers = (TASKS_PATH, EPISODES_PATH, EPISODES_STATS_PATH, _EPISODE_FILES[0])
    place_names = ("episode_chunk", "episode_index")
    vector_type = "Sequence"

    def listing(self, episode: Episode) -> str:
        return EPISODES_PATH

    def convert_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """v2.1 keys in LeRobot 0.3.3's order; v3.0's size limits kept only when not the defaults."""
        videos = sum(ft["dtype"] == "video" for ft in info["features"].values())
        episodes = info["total_episodes"]
        out = {
            "codebase_version": V21,
            "robot_type": info.get("robot_type"),
            "total_episodes": episodes,
            "total_frames": info["total_frames"],
            "total_tasks": info["total_tasks"],
            "total_videos": videos * episodes,
            "total_chunks": (episodes - 1) // info["chunks_size"] + 1 if episodes else 0,
            "chunks_size": info["chunks_size"],
            "fps": info["fps"],
            "splits": info.get("splits", {}),
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if info.get("video_path") else None,
            "features": info["features"],
        }
        defaults = {"data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB}
        rest = {k: v for k, v in info.items() if k not in _INFO_ORDER and defaults.get(k, object()) != v}
        return json.loads(json.dumps(out | rest))

    def check_info(self, path: Path, info: dict[str, Any], problems: Problems) -> None:
        videos = sum(ft["dtype"] == "video" for ft in info["features"].values())
        total_videos = info.get("total_videos")
        if total_videos is not None and total_videos != videos * info["total_episodes"]:
            problems.error(path, "total_videos", f"is {total_videos}, expected {videos} x total_episodes")

    def load_meta(self, root: Path, info: dict[str, Any], problems: Problems) -> DatasetMeta:
        tasks = _load_tasks(root, info, problems)
        episodes = _load_episodes(root, info, tasks, problems)
        episodes_stats = _load_episodes_stats(root, episodes, problems)
        meta = DatasetMeta(self, root, info, tasks, episodes, episodes_stats)
        for episode in episodes:
            _locate(meta, episode)
        return meta

    def write_meta(self, meta: DatasetMeta) -> None:
        """episodes_stats, tasks, episodes, then info.json (the commit point), each atomically."""
        root = meta.root
        stats = [{"episode_index": ep.index, "stats": meta.episodes_stats[ep.index]} for ep in meta.episodes]
        atomic_write_text(root / EPISODES_STATS_PATH, _jsonl(stats))
        tasks = [{"task_index": i, "task": t} for i, t in sorted(meta.tasks.items())]
        atomic_write_text(root / TASKS_PATH, _jsonl(tasks))
        atomic_write_text(root / EPISODES_PATH, _jsonl([ep.to_dict() for ep in meta.episodes]))
        info = meta.info
        info["total_episodes"] = len(meta.episodes)
        info["total_frames"] = meta.total_frames
        info["total_tasks"] = len(meta.tasks)
        info["total_videos"] = len(meta.video_keys) * len(meta.episodes)
        info["total_chunks"] = meta.chunk(len(meta.episodes) - 1) + 1 if meta.episodes else 0
        info["splits"] = {"train": f"0:{len(meta.episodes)}"} if meta.episodes else {}
        atomic_write_text(root / INFO_PATH, json.dumps(info, indent=4) + "\n")

    def place_files(self, meta: DatasetMeta, episode: Episode, staging: Path) -> None:
        """The episode's own files are moved to their final paths."""
        _locate(meta, episode)
        moves = [(staging / "episode.parquet", meta.root / meta.data_path(*episode.data))]
        moves += [
            (staging / f"{k}.mp4", meta.root / meta.video_path(k, s.chunk, s.file)) for k, s in episode.videos.items()
        ]
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)

    def recover(self, meta: DatasetMeta) -> None:
        """Data and video files numbered past the committed episodes are removed."""
        for path in _numbered_past(meta, _EPISODE_FILES):
            path.unlink()

    def leftovers(self, meta: DatasetMeta) -> list[Path]:
        """Data files numbered past the committed episodes."""
        return _numbered_past(meta, _EPISODE_FILES[:1])

    def groups(self, meta: DatasetMeta, size: Callable[[int], int], limit_mb: float) -> Groups:
        """One file per episode, whatever its size."""
        return [((meta.chunk(i), i), [i]) for i in range(len(meta.episodes))]


LAYOUT = V21Layout()


def _locate(meta: DatasetMeta, episode: Episode) -> None:
    """Set an episode's location: files of its own, row 0, time 0."""
    chunk = meta.chunk(episode.index)
    episode.data, episode.row = (chunk, episode.index), 0
    episode.videos = {k: VideoSpan(chunk, episode.index, 0.0, episode.length / meta.fps) for k in meta.video_keys}


def _numbered_past(meta: DatasetMeta, patterns: tuple[str, ...]) -> list[Path]:
    """Episode files matching `patterns` numbered past the committed episodes, in path order."""
    paths = []
    for pattern in patterns:
        for path in sorted(meta.root.glob(pattern)):
            number = path.stem.removeprefix("episode_")
            if number.isdigit() and int(number) >= len(meta.episodes):
                paths.append(path)
    return paths


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


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)
