"""Normalisation of states and actions, per (embodiment, dataset), and the stats that drive it.

Modes (x one native-dim vector, stats per dim, y what the model sees):
    bounds      y = 2 (x - min) / (max - min) - 1                   (default)
    bounds_q99  the same with the 1st / 99th percentiles in place of min / max
    normal      y = (x - mean) / std

Every edge case is decided here, once, for the training loader and `predict` (and so the server) alike;
both build their maps from the same config fields (`normalization`, `normalization_clamp`, `state_dim`,
`action_dim`). tests/test_normalization.py checks each case:
- Values outside the stats' range (a pose never reached while recording, anything beyond q01..q99): the
  bounds modes clamp y to [-1, 1] by default (config `normalization_clamp: true`), as the authors do;
  `normalization_clamp: false` keeps the plain affine map, as LeRobot's MIN_MAX does, so a checkpoint
  imported from LeRobot sees what it saw there. `normal` never clamps. The way back (`denormalize`) never
  clamps either: the model's output is mapped affinely, whatever its range.
- Constant dims (max - min, or std, at most 1e-8): y = 0 on the way in whatever x is, and the constant
  (the range's middle, or the mean) on the way back whatever y is. The authors divide by max - min + eps
  instead, which throws a state that moved off its recorded constant to the clamp bound.
- Padded dims: y is zero-padded to the model's width (`pad_to`: the config's `state_dim` / `action_dim`,
  24 by default), padded dims are exactly 0, and `denormalize` crops them away, ignoring what the model
  put there. Stats with more dims than the width are an error, never a silent crop.

Stats are stored as `{embodiment: {dataset: {"observation.state": {...}, "action": {...}}}}`, each
feature a dict of per-dim lists (`min`, `max`, and optionally `mean`, `std`, `q01`, `q99`). The older
authors' form `{embodiment: {"observation.state": ..., "action": ...}}` is read as dataset "default".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, STATE
from evo1cli.fileio import atomic_write_text, read_json
from evo1cli.model.config import MAX_DIM, NORMALIZATIONS

METRICS = ("min", "max", "mean", "std", "q01", "q99")
EPS = 1e-8
DEFAULT_DATASET = "default"


@dataclass
class FeatureStats:
    """Per-dim statistics of one feature (native dims, float64)."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.min.shape[0])

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FeatureStats:
        if not isinstance(data, dict):
            raise Evo1Error("expected an object of per-dim lists", field=where)
        values: dict[str, np.ndarray] = {}
        for name in METRICS:
            if name not in data:
                if name in ("min", "max"):
                    raise Evo1Error("missing", field=f"{where}.{name}")
                continue
            raw = data[name]
            if not isinstance(raw, list) or not raw or not all(_is_number(v) for v in raw):
                raise Evo1Error("expected a non-empty list of finite numbers", field=f"{where}.{name}")
            values[name] = np.asarray(raw, dtype=np.float64)
        dim = values["min"].shape[0]
        for name, arr in values.items():
            if arr.shape[0] != dim:
                raise Evo1Error(f"has {arr.shape[0]} dims but min has {dim}", field=f"{where}.{name}")
        if dim > MAX_DIM:
            raise Evo1Error(f"has {dim} dims, more than {MAX_DIM}", field=f"{where}.min")
        if (values["max"] < values["min"]).any():
            raise Evo1Error("max is below min", field=f"{where}.max")
        return cls(**values)

    def to_dict(self) -> dict[str, list[float]]:
        return {name: getattr(self, name).tolist() for name in METRICS if getattr(self, name) is not None}

    @classmethod
    def identity(cls, dim: int) -> FeatureStats:
        """Stats under which every mode is the identity on [-1, 1] (for untrained models)."""
        ones = np.ones(dim)
        return cls(min=-ones, max=ones.copy(), mean=np.zeros(dim), std=ones.copy(), q01=-ones, q99=ones.copy())


@dataclass
class NormStats:
    """The stats of one (embodiment, dataset): state and action."""

    state: FeatureStats
    action: FeatureStats

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> NormStats:
        return cls(FeatureStats.identity(state_dim), FeatureStats.identity(action_dim))


@dataclass
class StatsTable:
    """Stats keyed by (embodiment, dataset), as saved in a checkpoint's `norm_stats.json`."""

    entries: dict[tuple[str, str], NormStats] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.entries)

    def add(self, embodiment: str, dataset: str, stats: NormStats) -> None:
        self.entries[(embodiment, dataset)] = stats

    def get(self, embodiment: str | None = None, dataset: str | None = None) -> NormStats:
        """The stats of a key; either part may be omitted when it is unambiguous."""
        return self.entries[self.key(embodiment, dataset)]

    def key(self, embodiment: str | None = None, dataset: str | None = None) -> tuple[str, str]:
        """The full (embodiment, dataset) key that a possibly partial key names."""
        matches = [
            key for key in self.entries
            if (embodiment is None or key[0] == embodiment) and (dataset is None or key[1] == dataset)
        ]  # fmt: skip
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(f"{e}/{d}" for e, d in self.entries) or "none"
        wanted = f"{embodiment or '*'}/{dataset or '*'}"
        why = "no stats for" if not matches else "several stats match"
        raise Evo1Error(f"{why} {wanted} (known: {known}); pass an embodiment and dataset key", field="stats key")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (embodiment, dataset), stats in sorted(self.entries.items()):
            out.setdefault(embodiment, {})[dataset] = {STATE: stats.state.to_dict(), ACTION: stats.action.to_dict()}
        return out

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> StatsTable:
        try:
            return cls._from_dict(data)
        except Evo1Error as err:
            raise err if path is None else err.at(path) from None

    @classmethod
    def _from_dict(cls, data: Any) -> StatsTable:
        if not isinstance(data, dict):
            raise Evo1Error("expected {embodiment: {dataset: {observation.state, action}}}")
        table = cls()
        for embodiment, groups in data.items():
            if not isinstance(groups, dict):
                raise Evo1Error("expected an object", field=str(embodiment))
            if STATE in groups or ACTION in groups:  # the older single-dataset form
                groups = {DEFAULT_DATASET: groups}
            for dataset, features in groups.items():
                where = f"{embodiment}.{dataset}"
                if not isinstance(features, dict):
                    raise Evo1Error("expected an object", field=where)
                for name in (STATE, ACTION):
                    if name not in features:
                        raise Evo1Error("missing", field=f"{where}.{name}")
                state = FeatureStats.from_dict(features[STATE], f"{where}.{STATE}")
                action = FeatureStats.from_dict(features[ACTION], f"{where}.{ACTION}")
                table.add(str(embodiment), str(dataset), NormStats(state, action))
        return table

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> StatsTable:
        return cls.from_dict(read_json(path), path)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class Normalizer:
    """Maps native-dim vectors to the model's padded, normalised space and back (edge cases: see above)."""

    def __init__(self, mode: str = "bounds", pad_to: int = MAX_DIM, clamp: bool = True):
        if mode not in NORMALIZATIONS:
            raise Evo1Error(f"must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}", field="normalization")
        self.mode = mode
        self.pad_to = pad_to
        self.clamp = clamp and mode != "normal"  # only the bounds modes have a range to clip to

    def _affine(self, stats: FeatureStats) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(center, half-range, constant) per dim, with y = (x - center) / half-range."""
        if self.mode == "normal":
            if stats.mean is None or stats.std is None:
                raise Evo1Error("stats lack mean/std, needed by normalization 'normal'", field="stats")
            center, scale = stats.mean, stats.std
        else:
            lo, hi = (stats.min, stats.max) if self.mode == "bounds" else (stats.q01, stats.q99)
            if lo is None or hi is None:
                raise Evo1Error("stats lack q01/q99, needed by normalization 'bounds_q99'", field="stats")
            center, scale = (hi + lo) / 2, (hi - lo) / 2
        center_t, scale_t = torch.as_tensor(center), torch.as_tensor(scale)
        return center_t, scale_t, scale_t <= EPS

    def normalize(self, x: torch.Tensor | np.ndarray, stats: FeatureStats) -> torch.Tensor:
        """(..., native) raw values -> (..., pad_to) float32 normalised and zero-padded."""
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.shape[-1] != stats.dim:
            raise Evo1Error(f"has {x.shape[-1]} dims but the stats have {stats.dim}", field="value")
        if stats.dim > self.pad_to:
            raise Evo1Error(f"the stats have {stats.dim} dims, more than the model's {self.pad_to}", field="stats")
        center, scale, const = self._affine(stats)
        y = (x - center) / torch.where(const, 1.0, scale)
        y = torch.where(const, 0.0, y)
        if self.clamp:
            y = y.clamp(-1.0, 1.0)
        return torch.nn.functional.pad(y, (0, self.pad_to - stats.dim)).float()

    def denormalize(self, y: torch.Tensor | np.ndarray, stats: FeatureStats) -> torch.Tensor:
        """(..., >= native) normalised values -> (..., native) float32 raw values (padding cropped)."""
        y = torch.as_tensor(y, dtype=torch.float64)[..., : stats.dim]
        center, scale, const = self._affine(stats)
        return torch.where(const, center, y * scale + center).float()
