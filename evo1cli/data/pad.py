"""A padded copy of a dataset: state and action zero-padded to a model's widths, native dims recorded.

The widths default to the model config's `state_dim` and `action_dim` (24 each unless a recipe sets
them; 24 is also the most a model takes), the same fields the loader pads to.

The copy keeps the source's layout (v2.1 or v3.0): tables are rewritten with the padded columns and their
episodes' state and action stats; videos are hard-linked (or copied across filesystems), since they never
change in place. The native dims go to `meta/evo1_padding.json`, which the loader and the stats read, so a
padded copy trains exactly like its source. The copy appears atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.data.convert import Columns, rewrite
from evo1cli.data.format import load_meta
from evo1cli.data.stats import native_dims
from evo1cli.data.types import EVO1_PADDING_PATH, INFO_PATH
from evo1cli.data.writer import vector_stats
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, MAX_DIM, STATE
from evo1cli.fileio import atomic_directory
from evo1cli.model.config import Evo1Config

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

    features = json.loads(json.dumps(meta.features))
    for key in (STATE, ACTION):
        ft = features[key]
        names = list(ft.get("names") or [str(i) for i in range(ft["shape"][0])])
        ft["shape"] = [widths[key]]
        ft["names"] = names + [f"pad_{i}" for i in range(len(names), widths[key])]

    def pad(columns: Columns) -> Columns:
        for key in (STATE, ACTION):
            columns[key] = np.pad(columns[key], ((0, 0), (0, widths[key] - columns[key].shape[1])))
        return columns

    def restat(columns: Columns, stats: dict[str, Any]) -> dict[str, Any]:
        for key in (STATE, ACTION):
            values = columns[key].astype(np.float64)
            stats[key] = vector_stats(values) | {
                q: np.quantile(values, int(q[1:]) / 100, axis=0).tolist()
                for q in stats.get(key, {})
                if q[:1] == "q" and q[1:].isdigit()  # LeRobot 0.6's q01 ... q99, where the source has them
            }
        return stats

    with atomic_directory(out) as staging:
        rewrite(meta, staging, meta.version, features=features, change=pad, restat=restat, progress=progress)
        padding = {key: {"native_dim": dims[key], "padded_dim": widths[key]} for key in (STATE, ACTION)}
        (staging / EVO1_PADDING_PATH).write_text(json.dumps(padding, indent=2) + "\n")
    return out
