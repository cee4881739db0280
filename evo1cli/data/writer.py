"""Writing v2.1 or v3.0 datasets: new ones, or appending to existing ones, one atomic episode at a time.

An episode is recorded into a hidden staging directory (`.evo1-staging/`): videos are encoded while the
frames arrive, the parquet table and the episode stats are written at `commit()`. Committing then
  1. puts the episode's parquet and mp4 files in place, each with one os.replace (each appears whole):
     v2.1: the episode's own files are moved to their final paths;
     v3.0: the last data file and each camera's last mp4 are rewritten in staging, their committed rows
     and packets followed by the new episode's (remuxed, not re-encoded), and replace the old ones; past
     the size limits in info.json the episode starts new files instead, as LeRobot does;
  2. rewrites the episode and task metadata (each file atomically), and
  3. rewrites info.json last: the commit point. Until it lands, readers ignore the new episode.
A process killed at any moment (kill -9 included) therefore leaves a dataset whose committed episodes
are intact (a v3.0 file may hold the unfinished episode's rows or frames past the committed ones, which
readers ignore); the next writer removes the leftovers and appends after the last committed episode.
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

from evo1cli.data import v30
from evo1cli.data.format import (
    INDEX_FEATURES,
    INFO_PATH,
    STAGING_DIR,
    V21,
    V30,
    VERSIONS,
    DatasetMeta,
    Episode,
    VideoSpan,
    load_meta,
    locate_v21,
    new_info,
    video_feature,
    write_meta_v21,
)
from evo1cli.data.reader import read_episode, read_table
from evo1cli.data.video import CODEC, VideoWriter, concat_videos, packet_times, probe, video_duration
from evo1cli.errors import Evo1Error


@dataclass(frozen=True)
class Camera:
    key: str  # the feature name, e.g. "observation.images.corner2"
    height: int
    width: int


def arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    """The parquet column type LeRobot's `datasets` features produce for a feature."""
    value = pa.string() if ft["dtype"] == "string" else pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    shape = list(ft["shape"])
    if shape == [1]:
        return value
    if len(shape) == 1:
        return pa.list_(value, shape[0])  # datasets.Sequence(length=n) -> fixed_size_list<n>
    raise Evo1Error(f"only scalar and vector columns are supported, got shape {shape}", field="features")


def hf_features(features: Mapping[str, Mapping[str, Any]], version: str = V21) -> dict[str, Any]:
    """The `datasets.Features` JSON that LeRobot stores in each parquet file's schema metadata (a vector is a
    `Sequence` for datasets 3 and LeRobot 0.3.x, a `List` for datasets 4 and LeRobot 0.6.x)."""
    sequence = "List" if version == V30 else "Sequence"
    out: dict[str, Any] = {}
    for name, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        vector = {"feature": value, "length": ft["shape"][0], "_type": sequence}
        out[name] = value if list(ft["shape"]) == [1] else vector
    return out


def episode_table(
    features: Mapping[str, Mapping[str, Any]], columns: Mapping[str, np.ndarray], version: str = V21
) -> pa.Table:
    """Frames as an Arrow table in LeRobot's schema (non-video features, info.json order)."""
    names = [n for n, ft in features.items() if ft["dtype"] != "video"]
    arrays = []
    for name in names:
        ft, values = features[name], np.asarray(columns[name])
        kind = arrow_type(ft)
        if ft["dtype"] == "string":
            arrays.append(pa.array(values.reshape(-1).tolist(), type=kind))
        elif pa.types.is_fixed_size_list(kind):
            flat = pa.array(values.astype(ft["dtype"]).reshape(-1), type=kind.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, kind.list_size))
        else:
            arrays.append(pa.array(values.astype(ft["dtype"]).reshape(-1), type=kind))
    schema = pa.schema(
        [pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)],
        metadata={"huggingface": json.dumps({"info": {"features": hf_features(features, version)}})},
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def write_tables(path: Path, tables: list[pa.Table]) -> None:
    """Tables of one schema into one parquet file, one row group each (one per episode, as LeRobot 0.6 writes)."""
    with pq.ParquetWriter(path, tables[0].schema) as out:
        for table in tables:
            out.write_table(table, row_group_size=max(len(table), 1))


def write_meta(meta: DatasetMeta) -> None:
    """The episode, task and stats metadata, then info.json (the commit point), in the dataset's layout."""
    if meta.version == V30:
        v30.write_meta(meta)
    else:
        write_meta_v21(meta)


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
        if version is not None and version not in VERSIONS:
            raise Evo1Error(f"must be one of {', '.join(VERSIONS)}, got {version!r}", field="--format")
        if (self.root / INFO_PATH).exists():
            self.meta = load_meta(self.root)
            if version is not None and version != self.meta.version:
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
            info = new_info(fps, dict(features), robot_type)
            self.meta = DatasetMeta(self.root, v30.info_v30(info) if version == V30 else info, {}, [], {})
            write_meta(self.meta)

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
        meta, n = self.meta, len(self.meta.episodes)
        if meta.version != V30:
            for pattern in ("data/*/episode_*.parquet", "videos/*/*/episode_*.mp4"):
                for file in self.root.glob(pattern):
                    if file.stem.startswith("episode_") and file.stem[8:].isdigit() and int(file.stem[8:]) >= n:
                        file.unlink()
            write_meta(meta)  # drops lines that info.json's totals do not cover
            return
        last = meta.episodes[-1] if meta.episodes else None
        for path in v30.files_after(meta):
            path.unlink(missing_ok=True)
        listed = {ep.meta_file for ep in meta.episodes}
        for file in self.root.glob(v30.EPISODES_GLOB):
            if v30.file_place(file) not in listed:
                file.unlink()
        if last is not None:
            read_episode(meta, n - 1)  # the file new rows join must be sound: else an error naming it, here
            staging = self.root / STAGING_DIR
            staging.mkdir()
            path, rows = meta.data_file(n - 1), _rows_in_file(meta, n - 1)
            if pq.read_metadata(path).num_rows > rows:
                write_tables(staging / "data.parquet", [read_table(meta, path).slice(0, rows)])
                (staging / "data.parquet").replace(path)
            for key in meta.video_keys:
                path, end = meta.video_file(key, n - 1), last.videos[key].end
                if packet_times(path)[1] > end + 1e-3:
                    concat_videos([(path, 0.0, end)], staging / "video.mp4")
                    (staging / "video.mp4").replace(path)
            shutil.rmtree(staging)
        write_meta(meta)  # drops rows and tasks that info.json's totals do not cover

    def episode(self) -> EpisodeRecorder:
        return EpisodeRecorder(self)

    def _place_files(self, episode: Episode, staging: Path) -> None:
        """Step 1 of a commit: the staged `episode.parquet` and `<camera>.mp4` files into the dataset."""
        meta = self.meta
        if meta.version != V30:
            locate_v21(meta, episode)
            moves = [(staging / "episode.parquet", meta.root / meta.data_path(*episode.data))]
            moves += [
                (staging / f"{k}.mp4", meta.root / meta.video_path(k, s.chunk, s.file))
                for k, s in episode.videos.items()
            ]
            for source, target in moves:
                target.parent.mkdir(parents=True, exist_ok=True)
                source.replace(target)
            return
        size, last = int(meta.info["chunks_size"]), meta.episodes[-1] if meta.episodes else None
        staged = staging / "episode.parquet"
        limit = float(meta.info.get("data_files_size_in_mb", v30.DATA_FILE_MB)) * 2**20
        old = meta.data_file(len(meta.episodes) - 1) if last else None
        tables = [pq.read_table(staged)]
        if old is not None and old.stat().st_size + staged.stat().st_size < limit:
            episode.data, episode.row = last.data, _rows_in_file(meta, len(meta.episodes) - 1)
            tables = [_episode_rows(meta, i, tables[0].schema) for i in _episodes_in_file(meta, last.data)] + tables
        else:
            episode.data, episode.row = v30.next_file(last.data if last else None, size), 0
        write_tables(staged.with_name("data.parquet"), tables)
        moves = [(staged.with_name("data.parquet"), meta.root / meta.data_path(*episode.data))]
        limit = float(meta.info.get("video_files_size_in_mb", v30.VIDEO_FILE_MB)) * 2**20
        for key in meta.video_keys:
            new = staging / f"{key}.mp4"
            if last is not None:
                span = last.videos[key]
                old = meta.video_file(key, len(meta.episodes) - 1)
                if old.stat().st_size + new.stat().st_size < limit:
                    joined = staging / f"{key}.joined.mp4"
                    (start, end) = concat_videos([(old, 0.0, span.end), (new, 0.0, None)], joined)[1]
                    episode.videos[key] = VideoSpan(span.chunk, span.file, start, end)
                    moves.append((joined, old))
                    continue
            place = v30.next_file((last.videos[key].chunk, last.videos[key].file) if last else None, size)
            episode.videos[key] = VideoSpan(*place, 0.0, video_duration(new))
            moves.append((new, meta.root / meta.video_path(key, *place)))
        episode.meta_file = last.meta_file if last else (0, 0)
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)


def _episodes_in_file(meta: DatasetMeta, place: tuple[int, int]) -> list[int]:
    return [i for i, ep in enumerate(meta.episodes) if ep.data == place]


def _rows_in_file(meta: DatasetMeta, i: int) -> int:
    """The committed rows of episode i's data file."""
    return sum(meta.episodes[j].length for j in _episodes_in_file(meta, meta.episodes[i].data))


def _episode_rows(meta: DatasetMeta, i: int, schema: pa.Schema) -> pa.Table:
    """Episode i's committed rows, in `schema` (a LeRobot converter's list<float> becomes a fixed-size list)."""
    episode = meta.episodes[i]
    table = read_table(meta, meta.data_file(i)).slice(episode.row, episode.length)
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, KeyError) as err:
        raise Evo1Error(f"its columns differ from this collection's ({err})", path=meta.data_file(i)) from None


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
        pq.write_table(episode_table(features, columns, meta.version), self.staging / "episode.parquet")

        if not any(ft.get("info") for key, ft in features.items() if ft["dtype"] == "video"):
            for key in writer.cameras:  # the first episode fills in the video info, as LeRobot does
                features[key]["info"] = probe(self.staging / f"{key}.mp4").info()

        # 1. files into place (each appears whole), 2. metadata, info.json last.
        episode = Episode(self.index, list(dict.fromkeys(self.tasks)), self.length, extra)
        writer._place_files(episode, self.staging)
        meta.tasks.update(new_tasks)
        meta.episodes.append(episode)
        meta.episodes_stats[self.index] = stats
        write_meta(meta)
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
