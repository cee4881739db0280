"""The dataset format: which layout a codebase_version is (`layout_for`, the one place a version is mapped to its
layout), a new dataset's info.json, and reading any dataset's metadata (`load_meta`).

`load_meta` reads info.json and makes the checks both layouts share, then hands the rest to the dataset's
layout (v21.py, v30.py). It either raises on the first problem or, given a `Problems`, records every problem
and goes on (that is what `evo1 dataset validate` does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evo1cli.data import v21, v30
from evo1cli.data.types import (
    CHUNKS_SIZE,
    DEFAULT_VERSION,
    INDEX_FEATURES,
    INFO_PATH,
    NUMERIC_DTYPES,
    VERSIONS,
    DatasetMeta,
    Layout,
    Problems,
    is_int,
)
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, MAX_DIM, STATE

LAYOUTS: dict[str, Layout] = {layout.version: layout for layout in (v21.LAYOUT, v30.LAYOUT)}


def layout_for(version: str | None, field: str = "codebase_version") -> Layout:
    """The layout of LeRobot version `version` (v2.1 or v3.0; None: v2.1, what evo1 writes by default)."""
    layout = LAYOUTS.get(DEFAULT_VERSION if version is None else version)
    if layout is None:
        raise Evo1Error(f"must be one of {', '.join(VERSIONS)}, got {version!r}", field=field)
    return layout


def new_info(fps: int, features: dict[str, dict[str, Any]], robot_type: str | None, layout: Layout) -> dict[str, Any]:
    """The info.json of an empty dataset in `layout` (the same keys, in the same order, as LeRobot writes)."""
    uses_videos = any(ft["dtype"] == "video" for ft in features.values())
    empty = {"total_episodes": 0, "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE, "splits": {}}
    return layout.convert_info(
        empty | {"fps": fps, "robot_type": robot_type, "video_path": uses_videos, "features": features | INDEX_FEATURES}
    )


def load_meta(root: str | Path, problems: Problems | None = None) -> DatasetMeta:
    """Read and check a v2.1 or v3.0 dataset's metadata. Raises on the first problem unless `problems` collects."""
    problems = problems if problems is not None else Problems(collect=False)
    root = Path(root)
    if not root.is_dir():
        raise Evo1Error("not a directory", path=root)
    info = _load_info(root, problems)
    layout = LAYOUTS[info["codebase_version"]]
    _check_foreign_files(root, layout, problems)
    return layout.load_meta(root, info, problems)


def _check_foreign_files(root: Path, layout: Layout, problems: Problems) -> None:
    """The files that tell the layouts apart: one of another layout's next to info.json is a mixed-up directory."""
    version = layout.version
    for other in LAYOUTS.values():
        if other is layout:
            continue
        for marker in other.markers:
            found = sorted(root.glob(marker))[:1] if "*" in marker else [root / marker]
            for path in found:
                if path.exists():
                    problems.error(
                        path,
                        None,
                        f"a LeRobot {other.version} file in a {version} dataset (info.json says {version}): a "
                        "mixed-up or half-converted directory; move it away or convert with `evo1 dataset convert`",
                    )


def _load_info(root: Path, problems: Problems) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        hint = " (a LeRobot dataset has meta/info.json)" if not (root / "meta").is_dir() else ""
        raise Evo1Error(f"file not found{hint}", path=path)
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Evo1Error(f"not valid JSON ({err})", path=path) from None
    if not isinstance(info, dict):
        raise Evo1Error("expected a JSON object", path=path)
    version = info.get("codebase_version")
    if version not in VERSIONS:
        if isinstance(version, str) and version.startswith("v2"):
            why = f"is {version}; evo1 reads v2.1 and v3.0 (LeRobot's convert_dataset_v20_to_v21 upgrades v2.0)"
        else:
            why = f"is {version!r}; evo1 reads LeRobot v2.1 (LeRobot 0.3.x) and v3.0 (LeRobot >= 0.4) datasets"
        raise Evo1Error(why, path=path, field="codebase_version")

    for key in ("fps", "total_episodes", "total_frames", "total_tasks"):
        if not is_int(info.get(key)) or info[key] < (1 if key == "fps" else 0):
            raise Evo1Error(
                f"expected a {'positive' if key == 'fps' else 'non-negative'} integer", path=path, field=key
            )
    if not is_int(info.get("chunks_size")) or info["chunks_size"] < 1:
        raise Evo1Error("expected a positive integer", path=path, field="chunks_size")
    layout = LAYOUTS[version]
    places = layout.places(0, 0)
    _check_template(path, info, "data_path", **places)
    if info.get("video_path") is not None:
        _check_template(path, info, "video_path", **places, video_key="camera")
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        raise Evo1Error("expected an object of features", path=path, field="features")
    for name, ft in features.items():
        _check_feature(path, name, ft)
    for name, spec in INDEX_FEATURES.items():
        if name not in features:
            problems.error(path, f"features.{name}", "missing (every LeRobot dataset has it)")
        elif features[name]["dtype"] != spec["dtype"]:
            problems.error(path, f"features.{name}.dtype", f"expected {spec['dtype']}, got {features[name]['dtype']}")
    for name in (STATE, ACTION):
        if name not in features:
            problems.error(path, f"features.{name}", "missing (evo1 trains on observation.state and action)")
            continue
        ft = features[name]
        if ft["dtype"] not in ("float32", "float64") or len(ft["shape"]) != 1:
            problems.error(path, f"features.{name}", f"expected a float vector, got {ft['dtype']} {ft['shape']}")
        elif ft["shape"][0] > MAX_DIM:
            problems.error(path, f"features.{name}.shape", f"{ft['shape'][0]} dims, more than {MAX_DIM}")
    videos = [k for k, ft in features.items() if ft["dtype"] == "video"]
    if videos and not isinstance(info.get("video_path"), str):
        problems.error(path, "video_path", "expected a path template (the dataset has video features)")
    layout.check_info(path, info, problems)
    return info


def _check_template(path: Path, info: dict[str, Any], key: str, **fields: Any) -> None:
    template = info.get(key)
    if not isinstance(template, str):
        raise Evo1Error("expected a path template", path=path, field=key)
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as err:
        raise Evo1Error(f"bad placeholder {err} (expected {{{', '.join(fields)}}})", path=path, field=key) from None


def _check_feature(path: Path, name: str, ft: Any) -> None:
    where = f"features.{name}"
    if not isinstance(ft, dict):
        raise Evo1Error("expected an object", path=path, field=where)
    dtype, shape = ft.get("dtype"), ft.get("shape")
    if dtype == "image":
        raise Evo1Error("images stored in parquet are not supported; store cameras as video", path=path, field=where)
    if dtype not in (*NUMERIC_DTYPES, "video", "string"):
        raise Evo1Error(f"unknown dtype {dtype!r}", path=path, field=f"{where}.dtype")
    if not isinstance(shape, list | tuple) or not shape or not all(is_int(s) and s > 0 for s in shape):
        raise Evo1Error("expected a list of positive integers", path=path, field=f"{where}.shape")
    if dtype == "video" and (len(shape) != 3 or shape[2] != 3):
        raise Evo1Error(f"expected [height, width, 3], got {list(shape)}", path=path, field=f"{where}.shape")
