"""A padded copy of a dataset: state and action zero-padded to 24 dims, native dims recorded.

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
from evo1cli.data.format import ACTION, EVO1_PADDING_PATH, INFO_PATH, STATE, load_meta
from evo1cli.data.stats import native_dims
from evo1cli.data.writer import vector_stats
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory
from evo1cli.model.config import MAX_DIM


def pad_dataset(
    source: str | Path, out: str | Path, dim: int = MAX_DIM, progress: Callable[[int, int], None] | None = None
) -> Path:
    meta = load_meta(source)
    out = Path(out)
    if out.exists():
        raise Evo1Error("already exists; choose a new directory", path=out)
    if not 0 < dim <= MAX_DIM:
        raise Evo1Error(f"must be between 1 and {MAX_DIM}", field="--dim")
    dims = native_dims(meta)
    for key in (STATE, ACTION):
        if meta.dim(key) > dim:
            raise Evo1Error(f"has {meta.dim(key)} dims, more than --dim {dim}", path=meta.root / INFO_PATH, field=key)

    features = json.loads(json.dumps(meta.features))
    for key in (STATE, ACTION):
        ft = features[key]
        names = list(ft.get("names") or [str(i) for i in range(ft["shape"][0])])
        ft["shape"] = [dim]
        ft["names"] = names + [f"pad_{i}" for i in range(len(names), dim)]

    def pad(columns: Columns) -> Columns:
        for key in (STATE, ACTION):
            columns[key] = np.pad(columns[key], ((0, 0), (0, dim - columns[key].shape[1])))
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
        padding = {key: {"native_dim": dims[key], "padded_dim": dim} for key in (STATE, ACTION)}
        (staging / EVO1_PADDING_PATH).write_text(json.dumps(padding, indent=2) + "\n")
    return out
