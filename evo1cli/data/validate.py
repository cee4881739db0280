"""Every check `evo1 dataset validate` makes. Reads only; never modifies the dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evo1cli.data.format import STAGING_DIR, DatasetMeta, Problems, load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.video import probe
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
    for i, episode in enumerate(meta.episodes):
        read_episode(meta, i, problems, offset=offsets[i])
        for key in videos:
            _check_video(meta, key, episode.index, episode.length, decode, problems)
        if progress:
            progress(i + 1, len(meta.episodes))
    _check_leftovers(meta, problems)
    return meta, problems


def _check_video(meta: DatasetMeta, key: str, index: int, length: int, decode: bool, problems: Problems) -> None:
    path = meta.video_file(key, index)
    try:
        video = probe(path, decode=decode)
    except Evo1Error as err:
        problems.error(path, None, err.message)
        return
    height, width, _ = meta.features[key]["shape"]
    if (video.height, video.width) != (height, width):
        problems.error(path, None, f"is {video.height}x{video.width}, info.json says {height}x{width} ({key})")
    if video.frames != length:
        problems.error(path, None, f"has {video.frames} frames, the episode has {length}")
    if abs(video.fps - meta.fps) > 1e-3:
        problems.error(path, None, f"plays at {video.fps:g} fps, the dataset at {meta.fps}")


def _check_leftovers(meta: DatasetMeta, problems: Problems) -> None:
    if (meta.root / STAGING_DIR).exists():
        problems.warn(
            meta.root / STAGING_DIR, None, "an unfinished episode (interrupted write); the next collect removes it"
        )
    n = len(meta.episodes)
    for file in sorted(meta.root.glob("data/*/episode_*.parquet")):
        number = file.stem.removeprefix("episode_")
        if number.isdigit() and int(number) >= n:
            problems.warn(file, None, "not a committed episode (interrupted write); the next collect removes it")
