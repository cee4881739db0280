"""A padded copy of a dataset: state and action zero-padded to a model's widths, native dims recorded.

The widths default to the model config's `state_dim` and `action_dim` (24 each unless a recipe sets
them; 24 is also the most a model takes), the same fields the loader pads to.

Tables are rewritten with the padded columns; videos are hard-linked (or copied across filesystems),
since they never change in place. The native dims go to `meta/evo1_padding.json`, which the loader and
the stats read, so a padded copy trains exactly like its source. The copy appears atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from evo1cli.data.format import (
    ACTION,
    EPISODES_PATH,
    EPISODES_STATS_PATH,
    EVO1_PADDING_PATH,
    INFO_PATH,
    STATE,
    TASKS_PATH,
    load_meta,
)
from evo1cli.data.reader import column, read_episode
from evo1cli.data.stats import native_dims
from evo1cli.data.writer import episode_table, vector_stats
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory
from evo1cli.model.config import MAX_DIM, Evo1Config

DEFAULT = Evo1Config()


def pad_dataset(
    source: str | Path,
    out: str | Path,
    *,
    state_dim: int = DEFAULT.state_dim,
    action_dim: int = DEFAULT.action_dim,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    meta = load_meta(source)
    out = Path(out)
    if out.exists():
        raise Evo1Error("already exists; choose a new directory", path=out)
    widths = {STATE: state_dim, ACTION: action_dim}
    for key, name in ((STATE, "state_dim"), (ACTION, "action_dim")):
        if not 0 < widths[key] <= MAX_DIM:
            raise Evo1Error(f"must be between 1 and {MAX_DIM}, got {widths[key]}", field=name)
        if meta.dim(key) > widths[key]:
            message = f"has {meta.dim(key)} dims, more than the {name} {widths[key]} to pad to"
            raise Evo1Error(message, path=meta.root / INFO_PATH, field=f"features.{key}.shape")
    dims = native_dims(meta)

    info = json.loads(json.dumps(meta.info))
    for key in (STATE, ACTION):
        ft = info["features"][key]
        names = list(ft.get("names") or [str(i) for i in range(ft["shape"][0])])
        ft["shape"] = [widths[key]]
        ft["names"] = names + [f"pad_{i}" for i in range(len(names), widths[key])]
    features = info["features"]

    with atomic_directory(out) as staging:
        (staging / "meta").mkdir()
        for rel in (TASKS_PATH, EPISODES_PATH):
            shutil.copyfile(meta.root / rel, staging / rel)
        stats_lines = []
        offsets = meta.episode_offsets()
        for i, episode in enumerate(meta.episodes):
            read_episode(meta, i, offset=offsets[i])  # a malformed source stops the copy, naming the file
            table = pq.read_table(meta.data_file(i))
            columns = {name: column(table, name) for name in table.column_names if name in features}
            for key in (STATE, ACTION):
                values = columns[key]
                columns[key] = np.pad(values, ((0, 0), (0, widths[key] - values.shape[1])))
            target = staging / meta.data_file(i).relative_to(meta.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(episode_table(features, columns), target)
            stats = dict(meta.episodes_stats[episode.index])
            for key in (STATE, ACTION):
                stats[key] = vector_stats(columns[key].astype(np.float64))
            stats_lines.append(json.dumps({"episode_index": episode.index, "stats": stats}) + "\n")
            for key in meta.video_keys:
                video = meta.video_file(key, i)
                target = staging / video.relative_to(meta.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(video, target)
            if progress:
                progress(i + 1, len(meta.episodes))
        (staging / EPISODES_STATS_PATH).write_text("".join(stats_lines))
        padding = {key: {"native_dim": dims[key], "padded_dim": widths[key]} for key in (STATE, ACTION)}
        (staging / EVO1_PADDING_PATH).write_text(json.dumps(padding, indent=2) + "\n")
        (staging / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise Evo1Error("file not found", path=source)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
