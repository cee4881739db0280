"""Writing v2.1 datasets: new ones, or appending to existing ones, one atomic episode at a time.

An episode is recorded into a hidden staging directory (`.evo1-staging/`): videos are encoded while the
frames arrive, the parquet table and the episode stats are written at `commit()`. Committing then
  1. moves the episode's parquet and mp4 files to their final paths (os.replace: each appears whole),
  2. rewrites episodes_stats.jsonl, tasks.jsonl and episodes.jsonl (each atomically), and
  3. rewrites info.json last: the commit point. Until it lands, readers ignore the new episode.
A process killed at any moment (kill -9 included) therefore leaves a dataset whose committed episodes
are intact; the next writer removes the leftovers (staging, files and lines of the unfinished episode)
and appends after the last committed episode.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evo1cli.data.format import (
    EPISODES_PATH,
    EPISODES_STATS_PATH,
    INDEX_FEATURES,
    INFO_PATH,
    STAGING_DIR,
    TASKS_PATH,
    DatasetMeta,
    Episode,
    load_meta,
    new_info,
    video_feature,
)
from evo1cli.data.video import CODEC, VideoWriter, probe
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_text


@dataclass(frozen=True)
class Camera:
    key: str  # the feature name, e.g. "observation.images.corner2"
    height: int
    width: int


def arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    """The parquet column type LeRobot's `datasets` features produce for a feature."""
    value = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    shape = list(ft["shape"])
    if shape == [1]:
        return value
    if len(shape) == 1:
        return pa.list_(value, shape[0])  # datasets.Sequence(length=n) -> fixed_size_list<n>
    raise Evo1Error(f"only scalar and vector columns are supported, got shape {shape}", field="features")


def hf_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `datasets.Features` JSON that LeRobot stores in each parquet file's schema metadata."""
    out: dict[str, Any] = {}
    for name, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        out[name] = (
            value if list(ft["shape"]) == [1] else {"feature": value, "length": ft["shape"][0], "_type": "Sequence"}
        )
    return out


def episode_table(features: Mapping[str, Mapping[str, Any]], columns: Mapping[str, np.ndarray]) -> pa.Table:
    """One episode's frames as an Arrow table in LeRobot's schema (non-video features, info.json order)."""
    names = [n for n, ft in features.items() if ft["dtype"] != "video"]
    arrays = []
    for name in names:
        ft, values = features[name], np.asarray(columns[name])
        kind = arrow_type(ft)
        if pa.types.is_fixed_size_list(kind):
            flat = pa.array(values.astype(ft["dtype"]).reshape(-1), type=kind.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, kind.list_size))
        else:
            arrays.append(pa.array(values.astype(ft["dtype"]).reshape(-1), type=kind))
    schema = pa.schema(
        [pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)],
        metadata={"huggingface": json.dumps({"info": {"features": hf_features(features)}})},
    )
    return pa.Table.from_arrays(arrays, schema=schema)


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
    """Creates `root` as a v2.1 dataset, or opens it to append episodes with the same features."""

    def __init__(
        self,
        root: str | Path,
        fps: int,
        vectors: Mapping[str, Mapping[str, Any]],
        cameras: list[Camera],
        robot_type: str | None = None,
        codec: str = CODEC,
    ):
        self.root = Path(root)
        self.codec = codec
        self.cameras = {c.key: c for c in cameras}
        if (self.root / INFO_PATH).exists():
            self.meta = load_meta(self.root)
            self._check_compatible(fps, vectors, cameras)
            self._recover()
        else:
            if self.root.exists() and any(self.root.iterdir()):
                raise Evo1Error("exists, is not empty and has no meta/info.json", path=self.root)
            features = {**vectors, **{c.key: video_feature(c.height, c.width, {}) for c in cameras}}
            self.meta = DatasetMeta(self.root, new_info(fps, dict(features), robot_type), {}, [], {})
            self._write_meta()

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
        """Remove what an interrupted write left: staging, and files or lines past the committed episodes."""
        shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        n = len(self.meta.episodes)
        for pattern in ("data/*/episode_*.parquet", "videos/*/*/episode_*.mp4"):
            for file in self.root.glob(pattern):
                if file.stem.startswith("episode_") and file.stem[8:].isdigit() and int(file.stem[8:]) >= n:
                    file.unlink()
        self._write_meta()  # drops lines that info.json's totals do not cover

    # ------------------------------------------------------------------ metadata
    def _write_meta(self) -> None:
        """episodes_stats, tasks, episodes, then info.json (the commit point), each atomically."""
        meta = self.meta
        lines = [
            {"episode_index": ep.index, "stats": meta.episodes_stats[ep.index]} for ep in meta.episodes
        ]  # fmt: skip
        atomic_write_text(self.root / EPISODES_STATS_PATH, _jsonl(lines))
        atomic_write_text(
            self.root / TASKS_PATH, _jsonl([{"task_index": i, "task": t} for i, t in sorted(meta.tasks.items())])
        )
        atomic_write_text(self.root / EPISODES_PATH, _jsonl([ep.to_dict() for ep in meta.episodes]))
        info = meta.info
        info["total_episodes"] = len(meta.episodes)
        info["total_frames"] = meta.total_frames
        info["total_tasks"] = len(meta.tasks)
        info["total_videos"] = len(meta.video_keys) * len(meta.episodes)
        info["total_chunks"] = meta.chunk(len(meta.episodes) - 1) + 1 if meta.episodes else 0
        info["splits"] = {"train": f"0:{len(meta.episodes)}"} if meta.episodes else {}
        atomic_write_text(self.root / INFO_PATH, json.dumps(info, indent=4) + "\n")

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
        """Write the episode; `extra` keys (JSON values, e.g. seed, success) go into its episodes.jsonl line."""
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
        table_path = self.staging / "episode.parquet"
        pq.write_table(episode_table(features, columns), table_path)

        if not any(ft.get("info") for key, ft in features.items() if ft["dtype"] == "video"):
            for key in writer.cameras:  # the first episode fills in the video info, as LeRobot does
                features[key]["info"] = probe(self.staging / f"{key}.mp4").info()

        # 1. files into place (each appears whole), 2. metadata, info.json last.
        data_file = meta.data_file(self.index)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        table_path.replace(data_file)
        for key in writer.cameras:
            target = meta.video_file(key, self.index)
            target.parent.mkdir(parents=True, exist_ok=True)
            (self.staging / f"{key}.mp4").replace(target)
        episode = Episode(self.index, list(dict.fromkeys(self.tasks)), self.length, extra)
        meta.tasks.update(new_tasks)
        meta.episodes.append(episode)
        meta.episodes_stats[self.index] = stats
        writer._write_meta()
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


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)
