"""Reading one episode's frames (parquet) into numpy arrays, and checking them against the metadata.

`read_episode` is used by the loader, the stats, the converter and the validator alike: with
`Problems(collect=False)` (the default) the first problem raises an `Evo1Error` naming the file and column.
It reads (`episode_rows`, then `_arrays`: each column checked against info.json) and then checks the frames
(`check_frames`: row count, finite values, indices, tasks, timestamps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from evo1cli.data.tables import column, read_table
from evo1cli.data.types import INDEX_FEATURES, TIMESTAMP_TOLERANCE_S, DatasetMeta, Problems
from evo1cli.features import ACTION, STATE


@dataclass
class EpisodeTable:
    index: int
    state: np.ndarray  # (n, state_dim) float32
    action: np.ndarray  # (n, action_dim) float32
    timestamp: np.ndarray  # (n,) float64 seconds
    task_index: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.timestamp)


def read_episode(
    meta: DatasetMeta, episode_index: int, problems: Problems | None = None, offset: int | None = None
) -> EpisodeTable | None:
    """Read and check one episode's frames (`offset`: its first global `index`, checked when given).
    Returns None if they could not be read (the problems collected)."""
    problems = problems if problems is not None else Problems(collect=False)
    table = episode_rows(meta, episode_index, problems)
    if table is None:
        return None
    arrays = _arrays(meta, meta.data_file(episode_index), table, problems)
    if arrays is None:
        return None
    check_frames(meta, episode_index, arrays, problems, offset)
    return EpisodeTable(
        index=episode_index,
        state=arrays[STATE].astype(np.float32),
        action=arrays[ACTION].astype(np.float32),
        timestamp=arrays["timestamp"].astype(np.float64),
        task_index=arrays["task_index"].astype(np.int64),
    )


def episode_rows(meta: DatasetMeta, episode_index: int, problems: Problems | None = None) -> pa.Table | None:
    """The rows of an episode's data file that are its frames: the whole file where the episode has files of its
    own, else its row range (checked to exist). None if the file cannot be read (the problem collected)."""
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
    if meta.layout.own_files:
        return table
    if episode.row + episode.length > len(table):
        problems.error(
            path,
            None,
            f"has {len(table)} rows; episode {episode_index} needs rows {episode.row} to "
            f"{episode.row + episode.length - 1} ({listing})",
        )
        return None
    return table.slice(episode.row, episode.length)


def _arrays(meta: DatasetMeta, path: Path, table: pa.Table, problems: Problems) -> dict[str, np.ndarray] | None:
    """Every numeric column as numpy, its shape and dtype checked against info.json. None if one is unusable."""
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
    return arrays


def check_frames(
    meta: DatasetMeta, episode_index: int, arrays: dict[str, np.ndarray], problems: Problems, offset: int | None
) -> None:
    """An episode's columns against its metadata: row count, finite state and action, frame, episode and
    global indices, known tasks, and timestamps 1/fps apart."""
    episode, path = meta.episodes[episode_index], meta.data_file(episode_index)
    n = len(arrays["timestamp"])
    if n != episode.length:
        problems.error(path, None, f"{n} rows, {meta.listing(episode_index)} says length {episode.length}")
    for name in (STATE, ACTION):
        finite = np.isfinite(arrays[name])
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            problems.error(path, name, f"NaN or inf at frame {row}")
    rows = "" if meta.layout.own_files else f" (episode {episode_index}, rows {episode.row}..)"
    if not np.array_equal(arrays["frame_index"], np.arange(n)):
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
