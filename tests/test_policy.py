import dataclasses

import numpy as np
import pytest
import torch
from conftest import ACTION_DIM, fixed_noise, make_observation, make_stats

from evo1cli.errors import Evo1Error
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Policy


def test_predict_shapes_and_dtype(tiny_policy, tiny_config):
    obs = [make_observation(0, views=1), make_observation(1, views=2, size=200)]
    chunks = tiny_policy.predict(obs, noise=fixed_noise(2, tiny_config))
    assert [c.shape for c in chunks] == [(50, ACTION_DIM), (50, ACTION_DIM)]
    assert all(c.dtype == np.float32 for c in chunks)
    assert not np.allclose(chunks[0], chunks[1])


def test_batch_equals_one_at_a_time(tiny_policy, tiny_config):
    obs = [make_observation(0, views=1, prompt="a"), make_observation(1, views=3, prompt="a much longer prompt")]
    noise = fixed_noise(2, tiny_config)
    batched = tiny_policy.predict(obs, noise=noise)
    for i in range(2):
        single = tiny_policy.predict([obs[i]], noise=noise[i : i + 1])[0]
        np.testing.assert_allclose(single, batched[i], atol=1e-5)


def test_absent_view_slot_order_matters_but_content_of_absent_does_not(tiny_policy, tiny_config):
    obs = make_observation(0, views=1)
    noise = fixed_noise(1, tiny_config)
    first = tiny_policy.predict([obs], noise=noise)[0]
    second_slot = tiny_policy.predict([dataclasses.replace(obs, images=[None, obs.images[0]])], noise=noise)[0]
    padded = tiny_policy.predict([dataclasses.replace(obs, images=[obs.images[0], None, None])], noise=noise)[0]
    np.testing.assert_array_equal(first, padded)
    assert not np.allclose(first, second_slot)


def test_eager_and_sdpa_give_the_same_actions(tiny_config):
    policy = Evo1Policy.build(tiny_config, stats=make_stats())
    obs = [make_observation(0, views=2), make_observation(3, views=1, prompt="open the window")]
    noise = fixed_noise(2, tiny_config)
    sdpa = policy.predict(obs, noise=noise)
    policy.set_attention_backend("eager")
    eager = policy.predict(obs, noise=noise)
    for a, b in zip(sdpa, eager, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_seeded_generator_is_reproducible(tiny_policy):
    obs = [make_observation(2)]
    a = tiny_policy.predict(obs, generator=torch.Generator().manual_seed(7))[0]
    b = tiny_policy.predict(obs, generator=torch.Generator().manual_seed(7))[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": np.zeros(7)}, r"observations\[0\]\.state: expected 8 values"),
        ({"state": np.full(8, np.nan)}, r"observations\[0\]\.state: contains NaN"),
        ({"state": ["a"] * 8}, r"observations\[0\]\.state: expected a vector"),
        ({"images": [np.zeros((10, 10, 3), np.float32)]}, r"observations\[0\]\.images\[0\]: expected dtype uint8"),
        ({"images": [np.zeros((10, 10), np.uint8)]}, r"observations\[0\]\.images\[0\]: expected shape"),
        ({"images": [None] * 4}, r"observations\[0\]: 4 images but the model has 3"),
        ({"embodiment": "aloha"}, r"observations\[0\]: no stats for aloha"),
    ],
)
def test_bad_observations_get_clear_errors(tiny_policy, change, message):
    with pytest.raises(Evo1Error, match=message):
        tiny_policy.predict([dataclasses.replace(make_observation(0), **change)])


def test_a_policy_without_stats_asks_for_them(tiny_config):
    policy = Evo1Policy.build(tiny_config, stats=StatsTable())
    with pytest.raises(Evo1Error, match="no stats"):
        policy.predict([make_observation(0)])
