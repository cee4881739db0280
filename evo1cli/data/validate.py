"""Every check `evo1 dataset validate` makes, on v2.1 and v3.0 alike. Reads only; never modifies the dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.types import STAGING_DIR, TIMESTAMP_TOLERANCE_S, DatasetMeta, Problems
from evo1cli.data.video import packet_times, probe
from evo1cli.errors import Evo1Error


def validate(
    root: str | Path, decode: bool = False, progress: Callable[[int, int], None] | None = None
) -> tuple[DatasetMeta | None, Problems]:
    """Check structure, schema, every episode's table and videos. `decode` decodes every video frame."""
    problems = Problems(collect=True)
    try:
        meta = load_meta(root, problems)
    except Evo1Error as err:  # structural: nothing further can be checked
        problems.error(err.path or str(root), err.field, err.message)
        return None, problems
    offsets = meta.episode_offsets()
    videos = meta.video_keys if isinstance(meta.info.get("video_path"), str) else []  # else already reported
    files: dict[Path, _Video | None] = {}
    for i in range(len(meta.episodes)):
        read_episode(meta, i, problems, offset=offsets[i])
        for key in videos:
            path = meta.video_file(key, i)
            if path not in files:
                files[path] = _Video.check(meta, key, path, decode, problems)
            if files[path] is not None:
                files[path].check_episode(meta, key, i, problems)
        if progress:
            progress(i + 1, len(meta.episodes))
    _check_leftovers(meta, files, problems)
    return meta, problems


class _Video:
    """One mp4 file: its header checked against info.json, and its frame times for the episodes' spans."""

    def __init__(self, path: Path, frames: int, times: np.ndarray, end: float):
        self.path, self.frames, self.times, self.end = path, frames, times, end

    @classmethod
    def check(cls, meta: DatasetMeta, key: str, path: Path, decode: bool, problems: Problems) -> _Video | None:
        try:
            video = probe(path, decode=decode)
            times, end = packet_times(path)
        except Evo1Error as err:
            problems.error(path, None, err.message)
            return None
        height, width, _ = meta.features[key]["shape"]
        if (video.height, video.width) != (height, width):
            problems.error(path, None, f"is {video.height}x{video.width}, info.json says {height}x{width} ({key})")
        if abs(video.fps - meta.fps) > 1e-3:
            problems.error(path, None, f"plays at {video.fps:g} fps, the dataset at {meta.fps}")
        if decode and video.frames != len(times):
            problems.error(path, None, f"decodes to {video.frames} frames, its container lists {len(times)}")
        return cls(path, video.frames, times, end)

    def check_episode(self, meta: DatasetMeta, key: str, i: int, problems: Problems) -> None:
        episode = meta.episodes[i]
        span = episode.videos[key]
        if meta.layout.own_files:  # the whole file is the episode's
            if self.frames != episode.length:
                problems.error(self.path, None, f"has {self.frames} frames, the episode has {episode.length}")
            return
        where = f"episode {i}'s span [{span.start:.4f}, {span.end:.4f}) s"
        if span.end > self.end + TIMESTAMP_TOLERANCE_S:
            problems.error(self.path, None, f"{where} runs past the video's end ({self.end:.4f} s) ({key})")
            return
        inside = int(
            np.count_nonzero(
                (self.times >= span.start - TIMESTAMP_TOLERANCE_S) & (self.times < span.end - TIMESTAMP_TOLERANCE_S)
            )
        )
        if inside != episode.length:
            problems.error(self.path, None, f"{where} holds {inside} frames, the episode has {episode.length}")

    def committed_end(self, meta: DatasetMeta, key: str) -> float:
        return max(ep.videos[key].end for i, ep in enumerate(meta.episodes) if meta.video_file(key, i) == self.path)


def _check_leftovers(meta: DatasetMeta, videos: dict[Path, _Video | None], problems: Problems) -> None:
    """What an interrupted write leaves: warnings (the next collect removes them), never errors."""
    root, unfinished = meta.root, "interrupted write; the next collect removes it"
    if (root / STAGING_DIR).exists():
        problems.warn(root / STAGING_DIR, None, f"an unfinished episode ({unfinished})")
    for path in meta.layout.leftovers(meta):
        problems.warn(path, None, f"holds no committed episode ({unfinished})")
    n = len(meta.episodes)
    if meta.layout.own_files or not meta.episodes:  # else the last files may hold rows and frames past them
        return
    path, last = meta.data_file(n - 1), meta.episodes[-1]
    rows = sum(ep.length for ep in meta.episodes if ep.data == last.data)
    if path.is_file() and _rows(path) > rows:
        problems.warn(path, None, f"has rows past the committed episodes ({unfinished})")
    for key in meta.video_keys:
        path = meta.video_file(key, n - 1)
        video = videos.get(path)
        if video is not None and video.end > video.committed_end(meta, key) + 1e-3:
            problems.warn(path, None, f"has frames past the committed episodes ({unfinished})")


def _rows(path: Path) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except Exception:  # reported by read_episode
        return 0
