"""Stats: per frame, exact (equal to numpy on the concatenated frames), streamed with bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_dataset

from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.stats import dataset_stats, feature_stats, load_stats, write_stats


@pytest.mark.parametrize("budget", [10**7, 100, 3])
def test_feature_stats_equal_numpy_whatever_the_memory_budget(budget):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(3000, 3)), rng.integers(0, 4, (3000, 3)).astype(float)], axis=1)
    x[:, 5] = 2.5  # a constant dim
    stats = feature_stats(lambda: iter(np.array_split(x, 11)), budget=budget)
    for name, q in (("q01", 0.01), ("q99", 0.99)):
        assert np.array_equal(stats[name], np.quantile(x, q, axis=0))  # bit for bit
    assert np.allclose(stats["mean"], x.mean(0), rtol=0, atol=1e-12)
    assert np.allclose(stats["std"], x.std(0), rtol=0, atol=1e-12)
    assert stats["min"] == x.min(0).tolist() and stats["max"] == x.max(0).tolist() and stats["count"] == 3000


def test_dataset_stats_count_every_frame_once(tmp_path):
    meta = make_dataset(tmp_path / "ds", lengths=(12, 9))
    meta = load_meta(tmp_path / "ds")
    frames = np.concatenate([read_episode(meta, e).action for e in range(2)]).astype(np.float64)
    stats = dataset_stats(meta)
    assert stats["action"]["count"] == 21  # per frame, not per 50-step window
    assert np.array_equal(stats["action"]["q99"], np.quantile(frames, 0.99, axis=0))
    assert np.allclose(stats["action"]["mean"], frames.mean(0))
    path = write_stats(meta, stats)
    assert path.name == "evo1_stats.json" and not (tmp_path / "ds/meta/stats.json").exists()
    assert json.loads(path.read_text())["evo1"]["total_frames"] == 21
    assert load_stats(meta).action.max.tolist() == stats["action"]["max"]


def test_stale_stats_are_not_used(tmp_path):
    make_dataset(tmp_path / "ds", lengths=(5,))
    meta = load_meta(tmp_path / "ds")
    write_stats(meta, dataset_stats(meta))
    make_dataset(tmp_path / "ds", lengths=(4,))  # appends an episode
    assert load_stats(load_meta(tmp_path / "ds")) is None
