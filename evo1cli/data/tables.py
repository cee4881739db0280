"""Parquet tables in LeRobot's schema: columns read as numpy, frames written as Arrow, files read and written.

Both layouts store frames the same way (one row per frame, a column per non-video feature); they differ only
in how many episodes a file holds and in the `datasets` type of a vector column (`Layout.vector_type`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evo1cli.data.types import DatasetMeta, Layout
from evo1cli.errors import Evo1Error


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
    """A data file, from the one-file cache on `meta` while the file is unchanged. Raises OSError/ArrowException.
    A v3.0 file holds many episodes: reading the episodes in order reads each file once."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    table = meta.tables.get(key)
    if table is None:
        table = pq.read_table(path)
        meta.tables.clear()
        meta.tables[key] = table
    return table


def read_parquet(path: Path) -> pa.Table:
    """A whole parquet file; an `Evo1Error` naming it if it is missing or unreadable."""
    if not path.is_file():
        raise Evo1Error("file not found", path=path)
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise Evo1Error(f"not a readable parquet file ({err})", path=path) from None


def arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    """The parquet column type LeRobot's `datasets` features produce for a feature."""
    value = pa.string() if ft["dtype"] == "string" else pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    shape = list(ft["shape"])
    if shape == [1]:
        return value
    if len(shape) == 1:
        return pa.list_(value, shape[0])  # datasets.Sequence(length=n) -> fixed_size_list<n>
    raise Evo1Error(f"only scalar and vector columns are supported, got shape {shape}", field="features")


def hf_features(features: Mapping[str, Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    """The `datasets.Features` JSON that LeRobot stores in each parquet file's schema metadata (a vector is a
    `Sequence` for datasets 3 and LeRobot 0.3.x, a `List` for datasets 4 and LeRobot 0.6.x)."""
    out: dict[str, Any] = {}
    for name, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        vector = {"feature": value, "length": ft["shape"][0], "_type": layout.vector_type}
        out[name] = value if list(ft["shape"]) == [1] else vector
    return out


def episode_table(
    features: Mapping[str, Mapping[str, Any]], columns: Mapping[str, np.ndarray], layout: Layout
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
        metadata={"huggingface": json.dumps({"info": {"features": hf_features(features, layout)}})},
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def write_tables(path: Path, tables: list[pa.Table]) -> None:
    """Tables of one schema into one parquet file, one row group each (one per episode, as LeRobot 0.6 writes)."""
    with pq.ParquetWriter(path, tables[0].schema) as out:
        for table in tables:
            out.write_table(table, row_group_size=max(len(table), 1))


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
