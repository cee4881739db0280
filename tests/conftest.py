from __future__ import annotations

import numpy as np
import pytest
import torch

from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Policy, Observation

STATE_DIM, ACTION_DIM = 8, 4


@pytest.fixture(scope="session")
def tiny_config() -> Evo1Config:
    return Evo1Config.preset("tiny")


def make_stats() -> StatsTable:
    table = StatsTable()
    state = FeatureStats(min=np.linspace(-2, -1, STATE_DIM), max=np.linspace(1, 3, STATE_DIM))
    action = FeatureStats(min=np.array([-1.0, -1.0, -1.0, 0.0]), max=np.array([1.0, 1.0, 1.0, 0.5]))
    table.add("metaworld", "mt50", NormStats(state, action))
    return table


@pytest.fixture(scope="session")
def tiny_policy(tiny_config) -> Evo1Policy:
    return Evo1Policy.build(tiny_config, stats=make_stats()).eval()


def make_observation(seed: int = 0, views: int = 1, size: int = 96, prompt: str = "reach the goal") -> Observation:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size + 8 * i, 3), dtype=np.uint8) for i in range(views)]
    return Observation(images=images, prompt=prompt, state=rng.uniform(-1, 1, STATE_DIM))


def fixed_noise(batch: int, config: Evo1Config, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, config.horizon, config.action_dim, generator=g) * 2 - 1
