import numpy as np
import pytest

from evo1cli.model.config import Evo1Config
from evo1cli.model.policy import Evo1Model
from evo1cli.smoke import overfit, sample_error, synthetic_batch


@pytest.mark.slow
def test_the_head_overfits_a_fixed_batch():
    config = Evo1Config.preset("tiny", horizon=8, num_layers=2)
    policy = Evo1Model.build(config)
    batch, _ = synthetic_batch(config)
    error_before = sample_error(policy, batch)
    losses = overfit(policy, batch, steps=400)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert first / last > 10, (first, last)
    error_after = sample_error(policy, batch)
    assert error_after < 0.1 < error_before / 4, (error_before, error_after)
