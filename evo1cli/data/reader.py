"""Reading one episode's table (parquet) into numpy arrays, checking it against the metadata.

`read_episode` is used by the loader, the stats and the validator alike: with `Problems(collect=False)`
(the default) the first problem raises an `Evo1Error` naming the file and column. A v3.0 episode is a slice
of a file that many episodes share: the last file read stays cached on the `DatasetMeta`, so reading the
episodes in order reads each file once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evo1cli.data.format import ACTION, INDEX_FEATURES, STATE, TIMESTAMP_TOLERANCE_S, V30, DatasetMeta, Problems


@dataclass
class EpisodeTable:
    index: int
    state: np.ndarray  # (n, state_dim) float32
    action: np.ndarray  # (n, action_dim) float32
    timestamp: np.ndarray  # (n,) float64 seconds
    task_index: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.timestamp)


def column(table: pa.Table, name: str) -> np.ndarray:
    """A column as numpy: vectors (list or fixed-size list) become (n, d), scalars (n,)."""
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        if col.null_count:
            raise ValueError("has null rows")
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):  # LeRobot's v2.1 -> v3.0 converter
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if col.null_count or len(set(lengths.tolist())) > 1:
            raise ValueError("rows have different lengths or are null")
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), int(lengths[0]) if len(col) else 0)
    if col.null_count:
        raise ValueError("has null values")
    return col.to_numpy(zero_copy_only=False)


def read_table(meta: DatasetMeta, path: Path) -> pa.Table:
    """A data file, from the one-file cache on `meta` while the file is unchanged. Raises OSError/ArrowException."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    table = meta.tables.get(key)
    if table is None:
        table = pq.read_table(path)
        meta.tables.clear()
        meta.tables[key] = table
    return table


def read_episode(
    meta: DatasetMeta, episode_index: int, problems: Problems | None = None, offset: int | None = None
) -> EpisodeTable | None:
    """Read and check one episode's parquet. Returns None if it could not be read (problems collected)."""
    problems = problems if problems is not None else Problems(collect=False)
    episode = meta.episodes[episode_index]
    path = meta.data_file(episode_index)
    listing = meta.listing(episode_index)
    if not path.is_file():
        problems.error(path, None, f"file not found (episode {episode_index} is listed in {listing})")
        return None
    try:
        table = read_table(meta, path)
    except (pa.ArrowException, OSError) as err:
        problems.error(path, None, f"not a readable parquet file ({err})")
        return None
    if meta.version == V30:
        if episode.row + episode.length > len(table):
            problems.error(
                path,
                None,
                f"has {len(table)} rows; episode {episode_index} needs rows {episode.row} to "
                f"{episode.row + episode.length - 1} ({listing})",
            )
            return None
        table = table.slice(episode.row, episode.length)

    arrays: dict[str, np.ndarray] = {}
    bad = False
    for name, ft in meta.features.items():
        if ft["dtype"] in ("video", "string"):
            continue
        if name not in table.column_names:
            problems.error(path, name, "column missing")
            bad = True
            continue
        try:
            values = column(table, name)
        except (ValueError, pa.ArrowException) as err:
            problems.error(path, name, f"unreadable column ({err})")
            bad = True
            continue
        shape = list(ft["shape"])
        expected = (len(table),) if shape == [1] else (len(table), *shape)
        if values.shape != expected and not (shape == [1] and values.shape == (len(table), 1)):
            problems.error(path, name, f"shape {values.shape[1:]} per row, info.json says {shape}")
            bad = True
            continue
        if np.dtype(ft["dtype"]).kind != values.dtype.kind and not (
            np.dtype(ft["dtype"]).kind in "iu" and values.dtype.kind in "iu"
        ):
            problems.error(path, name, f"dtype {values.dtype}, info.json says {ft['dtype']}")
            bad = True
            continue
        arrays[name] = values.reshape(expected)
    if bad or any(name not in arrays for name in (STATE, ACTION, *INDEX_FEATURES)):
        return None  # a column info.json lacks or mistypes is reported by load_meta

    n = len(table)
    if n != episode.length:
        problems.error(path, None, f"{n} rows, {listing} says length {episode.length}")
    for name in (STATE, ACTION):
        finite = np.isfinite(arrays[name])
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            problems.error(path, name, f"NaN or inf at frame {row}")
    rows = f" (episode {episode_index}, rows {episode.row}..)" if meta.version == V30 else ""
    frame_index = arrays["frame_index"]
    if not np.array_equal(frame_index, np.arange(n)):
        problems.error(path, "frame_index", f"is not 0, 1, 2, ...{rows}")
    if not (arrays["episode_index"] == episode_index).all():
        problems.error(path, "episode_index", f"is not {episode_index} on every row{rows}")
    if offset is not None and not np.array_equal(arrays["index"], offset + np.arange(n)):
        problems.error(path, "index", f"is not {offset}, {offset + 1}, ... (the global frame index){rows}")
    unknown = sorted(set(arrays["task_index"].tolist()) - set(meta.tasks))
    if unknown:
        problems.error(path, "task_index", f"{unknown[0]} is not in {meta.tasks_file}{rows}")
    timestamp = arrays["timestamp"].astype(np.float64)
    if n > 1:
        steps = np.diff(timestamp)
        off = np.abs(steps - 1.0 / meta.fps) > TIMESTAMP_TOLERANCE_S
        if off.any():
            row = int(np.argmax(off)) + 1
            problems.error(
                path,
                "timestamp",
                f"frame {row} is {steps[row - 1]:.5f} s after the previous, not 1/fps = {1 / meta.fps:.5f}",
            )
    return EpisodeTable(
        index=episode_index,
        state=arrays[STATE].astype(np.float32),
        action=arrays[ACTION].astype(np.float32),
        timestamp=timestamp,
        task_index=arrays["task_index"].astype(np.int64),
    )
