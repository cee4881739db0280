"""Per-dim statistics of state and action, over frames (each frame counted once), exact and streamed.

min, max, mean and std (ddof 0, float64) come from one pass that merges per-episode moments (Chan et
al.). The 1st and 99th percentiles are exact order statistics, found without holding the data:
each further pass histograms the values inside the interval known to hold the wanted rank and narrows
the interval to one bin, until few enough values remain to collect them and select exactly. The result
equals `np.quantile(values, q)` (linear interpolation) on the concatenated frames.

For a model trained on relative actions (`relative_horizon` H) the action stats are those of its
targets, a_{t+k} - s_t for every frame t and k < H inside the episode (`relative_targets`), so that
the normaliser sees the values it will be asked to normalise.

Stats go to `meta/evo1_stats.json` as {"observation.state": {...}, "action": {...}, "evo1": {...}}; LeRobot's
own `meta/stats.json` is never written. The "evo1" part records what they were computed on (frames,
relative horizon); stats that no longer match are recomputed.

`fitted_dims` checks a dataset's native dims against a model's padded widths (its config's `state_dim`
and `action_dim`): the loader, `evo1 train --check` and the trainer refuse a dataset that does not fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.data.reader import read_episode
from evo1cli.data.types import EVO1_PADDING_PATH, EVO1_STATS_PATH, INFO_PATH, DatasetMeta
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, MAX_DIM, STATE
from evo1cli.fileio import atomic_write_text, read_json
from evo1cli.model.normalization import FeatureStats, NormStats
from evo1cli.model.relative_actions import relative_width, to_relative

QUANTILES = (0.01, 0.99)
BINS = 1024
STATS_FORMAT = "evo1-stats/1"

Chunks = Callable[[], Iterator[np.ndarray]]  # a fresh pass over (n_i, d) float64 chunks


@dataclass
class Moments:
    count: int
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        mean = x.mean(axis=0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0), x.min(axis=0), x.max(axis=0))

    def merge(self, other: Moments) -> Moments:
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return Moments(n, mean, m2, np.minimum(self.min, other.min), np.maximum(self.max, other.max))


def _virtual_index(n: int, q: float) -> tuple[int, float]:
    """numpy's 'linear' method: the quantile lies `gamma` of the way from x[k] to x[k + 1]."""
    virtual = (n - 1) * q
    k = int(np.floor(virtual))
    return min(max(k, 0), n - 1), float(virtual - np.floor(virtual))


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """numpy's `_lerp`, so the result matches np.quantile to the last bit."""
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def order_statistics(chunks: Chunks, ranks: list[int], moments: Moments, budget: int) -> np.ndarray:
    """The rank-th smallest value per dim, for each rank: (len(ranks), d). Exact; memory ~ `budget`."""
    d = moments.mean.shape[0]
    out = np.empty((len(ranks), d))
    for j in range(d):
        for i, rank in enumerate(ranks):
            out[i, j] = _select(chunks, j, rank, float(moments.min[j]), float(moments.max[j]), budget)
    return out


def _select(chunks: Chunks, dim: int, rank: int, lo: float, hi: float, budget: int) -> float:
    while True:
        if lo == hi:
            return lo
        inside = []
        count = 0
        edges = np.linspace(lo, hi, BINS + 1)
        hist = np.zeros(BINS, dtype=np.int64)
        below = 0  # values < lo
        for chunk in chunks():
            x = chunk[:, dim]
            below += int((x < lo).sum())
            x = x[(x >= lo) & (x <= hi)]
            count += len(x)
            if count <= budget:
                inside.append(x)
            hist += np.histogram(x, bins=edges)[0]
        if count <= budget:
            values = np.sort(np.concatenate(inside)) if inside else np.empty(0)
            return float(values[rank - below])
        cumulative = below + np.cumsum(hist)
        b = int(np.searchsorted(cumulative, rank, side="right"))
        new_lo, new_hi = float(edges[b]), float(edges[b + 1])
        if b + 1 < BINS:  # np.histogram's bins are half-open except the last: step just below the edge
            new_hi = float(np.nextafter(new_hi, -np.inf))
        if new_lo > new_hi:  # the bin is a single float
            return new_lo
        lo, hi = new_lo, new_hi


def feature_stats(chunks: Chunks, budget: int = 4_000_000) -> dict[str, Any]:
    """min, max, mean, std, q01, q99, count of the rows of every chunk, exactly."""
    moments: Moments | None = None
    for chunk in chunks():
        if len(chunk):
            m = Moments.of(chunk)
            moments = m if moments is None else moments.merge(m)
    if moments is None:
        raise Evo1Error("no frames")
    ranks, weights = [], []
    for q in QUANTILES:
        k, gamma = _virtual_index(moments.count, q)
        ranks += [k, min(k + 1, moments.count - 1)]
        weights.append(gamma)
    values = order_statistics(chunks, ranks, moments, budget)
    quantiles = [_lerp(values[2 * i], values[2 * i + 1], w) for i, w in enumerate(weights)]
    return {
        "min": moments.min.tolist(),
        "max": moments.max.tolist(),
        "mean": moments.mean.tolist(),
        "std": np.sqrt(moments.m2 / moments.count).tolist(),
        "q01": quantiles[0].tolist(),
        "q99": quantiles[1].tolist(),
        "count": moments.count,
    }


def native_dims(meta: DatasetMeta) -> dict[str, int]:
    """State and action dims before padding (a padded copy records them; otherwise the feature's)."""
    dims = {STATE: meta.dim(STATE), ACTION: meta.dim(ACTION)}
    path = meta.root / EVO1_PADDING_PATH
    if path.exists():
        recorded = read_json(path)
        for key in dims:
            value = recorded.get(key, {}).get("native_dim") if isinstance(recorded, dict) else None
            if not isinstance(value, int) or not 0 < value <= dims[key]:
                raise Evo1Error(f"expected 1 <= native_dim <= {dims[key]}", path=path, field=f"{key}.native_dim")
            dims[key] = value
    return dims


def fitted_dims(
    meta: DatasetMeta,
    state_dim: int = MAX_DIM,
    action_dim: int = MAX_DIM,
    relative: bool = False,
    relative_dims: int = 0,
) -> dict[str, int]:
    """`native_dims`, refused (naming the file and field) when wider than a model's padded widths, or,
    for relative actions, when the state has fewer dims than the action dims it is subtracted from (the
    first `relative_dims`, or all)."""
    dims = native_dims(meta)
    recorded = (meta.root / EVO1_PADDING_PATH).exists()

    def error(key: str, message: str) -> Evo1Error:
        path, field = (EVO1_PADDING_PATH, f"{key}.native_dim") if recorded else (INFO_PATH, f"features.{key}.shape")
        return Evo1Error(message, path=meta.root / path, field=field)

    for key, name, width in ((STATE, "state_dim", state_dim), (ACTION, "action_dim", action_dim)):
        if dims[key] > width:
            fix = f"set model.{name} to at least {dims[key]}"
            raise error(key, f"{dims[key]} dims, more than the model's {name} {width}: {fix}")
    subtracted = relative_width(dims[ACTION], relative_dims)
    if relative and dims[STATE] < subtracted:
        raise error(
            STATE,
            f"{dims[STATE]} dims, fewer than the action's {subtracted} relative dims: relative actions subtract "
            "the state's first dims from the action",
        )
    return dims


def relative_targets(state: np.ndarray, action: np.ndarray, horizon: int, dims: int = 0) -> np.ndarray:
    """Every relative training target of one episode, a_{t+k} - s_t for k < horizon and t + k < n: (rows, D)
    (offsets in the first `dims` action dims only, when not 0)."""
    n = len(action)
    return np.concatenate([to_relative(action[k:, None], state[: n - k], dims)[:, 0] for k in range(min(horizon, n))])


def dataset_stats(
    meta: DatasetMeta, budget: int = 4_000_000, relative_horizon: int | None = None, relative_dims: int = 0
) -> dict[str, Any]:
    """The stats of a dataset's state and action (native dims), per frame, and where they came from.
    With `relative_horizon`, the action stats are those of the relative targets (see the module's docstring),
    offsets in the first `relative_dims` action dims (0: all)."""
    dims = fitted_dims(meta, relative=relative_horizon is not None, relative_dims=relative_dims)

    def chunks(key: str) -> Chunks:
        def run() -> Iterator[np.ndarray]:
            for i in range(len(meta.episodes)):
                table = read_episode(meta, i)
                assert table is not None  # strict reading raises instead
                state = table.state[:, : dims[STATE]].astype(np.float64)
                if key == STATE:
                    yield state
                    continue
                action = table.action[:, : dims[ACTION]].astype(np.float64)
                if relative_horizon is None:
                    yield action
                else:
                    yield relative_targets(state, action, relative_horizon, relative_dims)

        return run

    out: dict[str, Any] = {key: feature_stats(chunks(key), budget) for key in (STATE, ACTION)}
    out["evo1"] = {
        "format": STATS_FORMAT,
        "total_episodes": len(meta.episodes),
        "total_frames": meta.total_frames,
        "relative_horizon": relative_horizon,
        "relative_dims": relative_dims,
    }
    return out


def write_stats(meta: DatasetMeta, stats: dict[str, Any]) -> Path:
    path = meta.root / EVO1_STATS_PATH
    atomic_write_text(path, json.dumps(stats, indent=2) + "\n")
    return path


def load_stats(meta: DatasetMeta, relative_horizon: int | None = None, relative_dims: int = 0) -> NormStats | None:
    """The dataset's evo1 stats if present and computed on its current frames (and the same relative
    horizon and dims), else None."""
    path = meta.root / EVO1_STATS_PATH
    if not path.exists():
        return None
    data = read_json(path)
    source = data.get("evo1") if isinstance(data, dict) else None
    if not isinstance(source, dict) or source.get("total_frames") != meta.total_frames:
        return None  # stale: the dataset grew since
    if source.get("relative_horizon") != relative_horizon or source.get("relative_dims", 0) != relative_dims:
        return None  # computed for other targets
    try:
        return NormStats(
            FeatureStats.from_dict(data.get(STATE), STATE), FeatureStats.from_dict(data.get(ACTION), ACTION)
        )
    except Evo1Error as err:
        raise err.at(path) from None


def norm_stats(meta: DatasetMeta, relative_horizon: int | None = None, relative_dims: int = 0) -> NormStats:
    """Stats for normalisation: the stats file when it matches, else computed now (not written)."""
    stats = load_stats(meta, relative_horizon, relative_dims)
    if stats is not None:
        return stats
    data = dataset_stats(meta, relative_horizon=relative_horizon, relative_dims=relative_dims)
    return NormStats(FeatureStats.from_dict(data[STATE], STATE), FeatureStats.from_dict(data[ACTION], ACTION))
