"""Writing v2.1 or v3.0 datasets: new ones, or appending to existing ones, one atomic episode at a time.

An episode is recorded into a hidden staging directory (`.evo1-staging/`): videos are encoded while the
frames arrive, the parquet table and the episode stats are written at `commit()`. Committing then
  1. puts the episode's parquet and mp4 files in place, each with one os.replace (each appears whole;
     the dataset's `Layout.place_files`):
     v2.1: the episode's own files are moved to their final paths;
     v3.0: the last data file and each camera's last mp4 are rewritten in staging, their committed rows
     and packets followed by the new episode's (remuxed, not re-encoded), and replace the old ones; past
     the size limits in info.json the episode starts new files instead, as LeRobot does;
  2. rewrites the episode and task metadata (each file atomically), and
  3. rewrites info.json last: the commit point. Until it lands, readers ignore the new episode.
     (2 and 3 are the dataset's `Layout.write_meta`.)
A process killed at any moment (kill -9 included) therefore leaves a dataset whose committed episodes
are intact (a v3.0 file may hold the unfinished episode's rows or frames past the committed ones, which
readers ignore); the next writer removes the leftovers (`Layout.recover`) and appends after the last committed episode.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from evo1cli.data.format import layout_for, load_meta, new_info
from evo1cli.data.tables import episode_table
from evo1cli.data.types import INDEX_FEATURES, INFO_PATH, STAGING_DIR, DatasetMeta, Episode, video_feature
from evo1cli.data.video import CODEC, VideoWriter, probe
from evo1cli.errors import Evo1Error


@dataclass(frozen=True)
class Camera:
    key: str  # the feature name, e.g. "observation.images.corner2"
    height: int
    width: int


# ---------------------------------------------------------------------------------------------- stats
def _sample_indices(n: int) -> list[int]:
    """LeRobot's frame sampling for image stats (100 frames up to ~500, then n ** 0.75)."""
    count = n if n < 100 else max(100, min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, count)).astype(int).tolist()


def _downsample(image: np.ndarray) -> np.ndarray:
    """LeRobot's `auto_downsample_height_width` for an HxWx3 image: stride down to ~150 px."""
    height, width = image.shape[:2]
    if max(height, width) < 300:
        return image
    step = int(width / 150) if width > height else int(height / 150)
    return image[::step, ::step]


def vector_stats(values: np.ndarray) -> dict[str, list[Any]]:
    """min/max/mean/std/count over frames, as LeRobot's `compute_episode_stats` (scalars keep a dim)."""
    values = np.asarray(values)
    keep = values.ndim == 1
    return {
        "min": np.atleast_1d(values.min(axis=0, keepdims=keep)).tolist(),
        "max": np.atleast_1d(values.max(axis=0, keepdims=keep)).tolist(),
        "mean": np.atleast_1d(values.mean(axis=0, keepdims=keep)).tolist(),
        "std": np.atleast_1d(values.std(axis=0, keepdims=keep)).tolist(),
        "count": [len(values)],
    }


def image_stats(frames: list[np.ndarray]) -> dict[str, list[Any]]:
    """Per-channel stats in [0, 1] of the sampled frames, shaped (3, 1, 1) like LeRobot's."""
    sample = np.stack([frames[i] for i in _sample_indices(len(frames))]).astype(np.float64)  # (n, h, w, 3)
    axes = (0, 1, 2)
    stats = {
        "min": sample.min(axis=axes),
        "max": sample.max(axis=axes),
        "mean": sample.mean(axis=axes),
        "std": sample.std(axis=axes),
    }
    out: dict[str, list[Any]] = {k: (v / 255.0).reshape(3, 1, 1).tolist() for k, v in stats.items()}
    out["count"] = [len(sample)]
    return out


# ---------------------------------------------------------------------------------------------- writer
class DatasetWriter:
    """Creates `root` as a dataset (v2.1 unless `version` says v3.0), or opens it to append episodes with the
    same features; an existing dataset keeps its layout (`version`, if given, must match it)."""

    def __init__(
        self,
        root: str | Path,
        fps: int,
        vectors: Mapping[str, Mapping[str, Any]],
        cameras: list[Camera],
        robot_type: str | None = None,
        codec: str = CODEC,
        version: str | None = None,
    ):
        self.root = Path(root)
        self.codec = codec
        self.cameras = {c.key: c for c in cameras}
        layout = layout_for(version, field="--format")  # checked even when appending
        if (self.root / INFO_PATH).exists():
            self.meta = load_meta(self.root)
            if version is not None and layout is not self.meta.layout:
                raise Evo1Error(
                    f"is a LeRobot {self.meta.version} dataset, not {version}: append to it in its own layout, or "
                    f"convert it first (evo1 dataset convert {self.root} --to {version} --out DIR)",
                    path=self.root / INFO_PATH,
                    field="codebase_version",
                )
            self._check_compatible(fps, vectors, cameras)
            self._recover()
        else:
            if self.root.exists() and any(self.root.iterdir()):
                raise Evo1Error("exists, is not empty and has no meta/info.json", path=self.root)
            features = {**vectors, **{c.key: video_feature(c.height, c.width, {}) for c in cameras}}
            info = new_info(fps, dict(features), robot_type, layout)
            self.meta = DatasetMeta(layout, self.root, info, {}, [], {})
            layout.write_meta(self.meta)

    def _check_compatible(self, fps: int, vectors: Mapping[str, Mapping[str, Any]], cameras: list[Camera]) -> None:
        path = self.root / INFO_PATH
        if self.meta.fps != fps:
            raise Evo1Error(
                f"the dataset records at {self.meta.fps} fps, this collection at {fps}", path=path, field="fps"
            )
        features = self.meta.features
        for name, ft in vectors.items():
            if name not in features or list(features[name]["shape"]) != list(ft["shape"]):
                raise Evo1Error(
                    f"does not match this collection's {list(ft['shape'])}", path=path, field=f"features.{name}"
                )
        for cam in cameras:
            ft = features.get(cam.key)
            if ft is None or list(ft["shape"]) != [cam.height, cam.width, 3]:
                raise Evo1Error(
                    f"does not match this collection's {cam.height}x{cam.width} camera",
                    path=path,
                    field=f"features.{cam.key}",
                )

    def _recover(self) -> None:
        """Remove what an interrupted write left: staging, and files, rows, frames or metadata past the
        committed episodes. Each step only drops leftovers, so being killed here is harmless too."""
        shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        self.meta.layout.recover(self.meta)
        self.meta.layout.write_meta(self.meta)  # drops the episodes and tasks that info.json's totals do not cover

    def episode(self) -> EpisodeRecorder:
        return EpisodeRecorder(self)


class EpisodeRecorder:
    """Frames of one episode, staged until `commit()`; `discard()` (or an exception) drops them."""

    def __init__(self, writer: DatasetWriter):
        self.writer = writer
        self.index = len(writer.meta.episodes)
        self.staging = writer.root / STAGING_DIR / f"episode_{self.index:06d}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.columns: dict[str, list[np.ndarray]] = {}
        self.tasks: list[str] = []
        self.videos: dict[str, VideoWriter] = {}
        self.samples: dict[str, list[np.ndarray]] = {key: [] for key in writer.cameras}
        self.length = 0

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None or self.staging.exists():
            self.discard()

    def add_frame(self, values: Mapping[str, np.ndarray], images: Mapping[str, np.ndarray], task: str) -> None:
        """One frame: a vector per vector feature (e.g. state, action), an RGB image per camera."""
        writer = self.writer
        for key, cam in writer.cameras.items():
            if key not in images:
                raise Evo1Error("no image for this camera", field=key)
            video = self.videos.get(key)
            if video is None:
                video = VideoWriter(self.staging / f"{key}.mp4", writer.meta.fps, cam.width, cam.height, writer.codec)
                self.videos[key] = video
            video.add(images[key])
            self.samples[key].append(_downsample(images[key]))
        for key, value in values.items():
            self.columns.setdefault(key, []).append(np.asarray(value))
        self.tasks.append(task)
        self.length += 1

    def commit(self, **extra: Any) -> Episode:
        """Write the episode; `extra` keys (JSON values, e.g. seed, success) go into its episode metadata."""
        if self.length == 0:
            raise Evo1Error("an episode needs at least one frame")
        writer, meta = self.writer, self.writer.meta
        for video in self.videos.values():
            video.close()
        self.videos.clear()
        new_tasks = {}
        for task in dict.fromkeys(self.tasks):
            if task not in meta.tasks.values():
                new_tasks[len(meta.tasks) + len(new_tasks)] = task
        task_of = {t: i for i, t in {**meta.tasks, **new_tasks}.items()}
        offset = meta.total_frames
        frames = np.arange(self.length)
        columns: dict[str, np.ndarray] = {key: np.stack(v) for key, v in self.columns.items()}
        columns |= {
            "timestamp": (frames / meta.fps).astype(np.float32),
            "frame_index": frames,
            "episode_index": np.full(self.length, self.index),
            "index": offset + frames,
            "task_index": np.array([task_of[t] for t in self.tasks]),
        }
        features = meta.features
        for key in features:
            if features[key]["dtype"] != "video" and key not in columns:
                raise Evo1Error("no values recorded for this feature", field=key)
        stats: dict[str, Any] = {}
        for key, ft in features.items():
            if ft["dtype"] == "video":
                stats[key] = image_stats(self.samples[key])
            elif ft["dtype"] != "string":
                stats[key] = vector_stats(
                    columns[key].astype(np.float64) if key not in INDEX_FEATURES else columns[key]
                )
        pq.write_table(episode_table(features, columns, meta.layout), self.staging / "episode.parquet")

        if not any(ft.get("info") for key, ft in features.items() if ft["dtype"] == "video"):
            for key in writer.cameras:  # the first episode fills in the video info, as LeRobot does
                features[key]["info"] = probe(self.staging / f"{key}.mp4").info()

        # 1. files into place (each appears whole), 2. metadata, info.json last.
        episode = Episode(self.index, list(dict.fromkeys(self.tasks)), self.length, extra)
        meta.layout.place_files(meta, episode, self.staging)
        meta.tasks.update(new_tasks)
        meta.episodes.append(episode)
        meta.episodes_stats[self.index] = stats
        meta.layout.write_meta(meta)
        self.discard()
        return episode

    def discard(self) -> None:
        for video in self.videos.values():
            with contextlib.suppress(Exception):  # the files are thrown away anyway
                video.close()
        self.videos.clear()
        shutil.rmtree(self.staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # the staging root goes when no episode is left in it
            self.staging.parent.rmdir()
