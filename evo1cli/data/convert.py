"""Converting a dataset between the LeRobot v2.1 and v3.0 layouts, and rewriting one in its own layout.

`rewrite` writes every episode of a dataset into an empty directory in either layout, optionally changing
its columns on the way (`dataset pad` does). Every value is copied exactly; videos are never re-encoded:
in the same layout their files are hard-linked (or copied), across layouts their packets are remuxed
(`concat_videos`), so the decoded pixels stay identical, as with LeRobot's own converter.

- v2.1 -> v3.0 packs consecutive episodes into a file, as LeRobot's `convert_dataset_v21_to_v30` does: a
  file takes episodes until the next would bring it to `data_files_size_in_mb` (`video_files_size_in_mb`
  for each camera's mp4), by the sizes of the episodes' own files.
- v3.0 -> v2.1 cuts each episode's span out of the shared mp4; a span starts on a keyframe wherever
  LeRobot wrote the file (it encodes each episode on its own before concatenating).

The episode metadata (tasks, evo1's seed, variation, success, ... and any other field) and the
per-episode stats carry over both ways; v3.0's meta/stats.json is their aggregate. evo1's own files
(meta/evo1_stats.json, meta/evo1_padding.json) are copied.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.data.format import layout_for, load_meta
from evo1cli.data.reader import episode_rows, read_episode
from evo1cli.data.tables import column, episode_table, write_tables
from evo1cli.data.types import (
    DATA_FILE_MB,
    EVO1_PADDING_PATH,
    EVO1_STATS_PATH,
    INFO_PATH,
    VIDEO_FILE_MB,
    DatasetMeta,
    Episode,
    VideoSpan,
)
from evo1cli.data.video import concat_videos
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory

Columns = dict[str, np.ndarray]


def convert_dataset(
    source: str | Path, out: str | Path, to: str, progress: Callable[[int, int], None] | None = None
) -> DatasetMeta:
    """Write `source` in layout `to` (v2.1 or v3.0) as the new directory `out`, which appears whole or not at all."""
    layout = layout_for(to, field="--to")
    meta = load_meta(source)
    out = Path(out)
    if meta.layout is layout:
        raise Evo1Error(f"is already a LeRobot {to} dataset", path=meta.root / INFO_PATH, field="codebase_version")
    if out.exists():
        raise Evo1Error("already exists; choose a new directory", path=out)
    with atomic_directory(out) as staging:
        converted = rewrite(meta, staging, to, progress=progress)
        for rel in (EVO1_STATS_PATH, EVO1_PADDING_PATH):
            if (meta.root / rel).is_file():
                shutil.copyfile(meta.root / rel, staging / rel)
    converted.root = out
    return converted


def rewrite(
    meta: DatasetMeta,
    root: Path,
    version: str,
    features: Mapping[str, Any] | None = None,
    change: Callable[[Columns], Columns] | None = None,
    restat: Callable[[Columns, dict[str, Any]], dict[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetMeta:
    """Write `meta`'s dataset into the empty directory `root` in layout `version`. `features` replaces
    info.json's features, `change` maps each episode's columns and `restat` its stats (given the new columns).
    A malformed source stops the rewrite with an `Evo1Error` naming the file."""
    info = json.loads(json.dumps(meta.info))
    if features is not None:
        info["features"] = json.loads(json.dumps(features))
    layout = layout_for(version)
    target = DatasetMeta(layout, root, layout.convert_info(info), dict(meta.tasks), [], {})
    info = target.info
    same = layout is meta.layout
    for ep in meta.episodes:
        episode = Episode(ep.index, list(ep.tasks), ep.length, dict(ep.extra))
        episode.meta_file = ep.meta_file if same else (0, 0)
        target.episodes.append(episode)
    steps, done = len(meta.episodes) * (1 + len(meta.video_keys)), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, steps)

    offsets = meta.episode_offsets()
    for place, group in _data_files(meta, target):
        tables = []
        for row, i in zip(np.cumsum([0] + [meta.episodes[j].length for j in group]), group, strict=False):
            read_episode(meta, i, offset=offsets[i])  # checks the table against the metadata; raises if malformed
            episode = meta.episodes[i]
            table = episode_rows(meta, i)
            columns = {name: column(table, name) for name, ft in info["features"].items() if ft["dtype"] != "video"}
            stats = json.loads(json.dumps(meta.episodes_stats[episode.index]))
            if change is not None:
                columns = change(columns)
                stats = restat(columns, stats) if restat is not None else stats
            tables.append(episode_table(info["features"], columns, layout))
            target.episodes[i].data, target.episodes[i].row = place, int(row)
            target.episodes_stats[episode.index] = stats
            advance(1)
        path = root / target.data_path(*place)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tables(path, tables)
    for key in meta.video_keys:
        _videos(meta, target, key, same, advance)
    layout.write_meta(target)
    return target


def _data_files(meta: DatasetMeta, target: DatasetMeta) -> list[tuple[tuple[int, int], list[int]]]:
    """Each target data file's (chunk, file) and the episodes it holds: in the same layout, the source's files."""
    if target.layout is meta.layout:
        groups: dict[tuple[int, int], list[int]] = {}
        for i, episode in enumerate(meta.episodes):
            groups.setdefault(episode.data, []).append(i)
        return list(groups.items())
    limit = float(meta.info.get("data_files_size_in_mb", DATA_FILE_MB))
    return target.layout.groups(meta, lambda i: _size(meta.data_file(i)), limit)


def _videos(meta: DatasetMeta, target: DatasetMeta, key: str, same: bool, advance: Callable[[int], None]) -> None:
    """One camera's videos into `target`: hard links in the same layout, else remuxed spans."""
    if same:
        for i, ep in enumerate(meta.episodes):
            span = ep.videos[key]
            target.episodes[i].videos[key] = VideoSpan(span.chunk, span.file, span.start, span.end)
            path = target.root / target.video_path(key, span.chunk, span.file)
            if not path.exists():
                _link_or_copy(meta.video_file(key, i), path)
            advance(1)
        return
    limit = float(target.info.get("video_files_size_in_mb", VIDEO_FILE_MB))
    for (chunk, file), group in target.layout.groups(meta, lambda i: _size(meta.video_file(key, i)), limit):
        path = target.root / target.video_path(key, chunk, file)
        path.parent.mkdir(parents=True, exist_ok=True)
        segments = []
        for i in group:
            span = meta.episodes[i].videos[key]
            whole = meta.layout.own_files  # an episode's own file is all its: LeRobot takes its whole duration
            segments.append((meta.video_file(key, i), 0.0 if whole else span.start, None if whole else span.end))
        for i, (start, end) in zip(group, concat_videos(segments, path), strict=True):
            target.episodes[i].videos[key] = VideoSpan(chunk, file, start, end)
        advance(len(group))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        raise Evo1Error("file not found", path=path) from None


def _link_or_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise Evo1Error("file not found", path=source)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
