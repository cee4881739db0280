import dataclasses

import numpy as np
import pytest
import torch
from conftest import ACTION_DIM, fixed_noise, make_observation, make_stats

from evo1cli.errors import Evo1Error
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Model


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
    policy = Evo1Model.build(tiny_config, stats=make_stats())
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
    policy = Evo1Model.build(tiny_config, stats=StatsTable())
    with pytest.raises(Evo1Error, match="no stats"):
        policy.predict([make_observation(0)])


def test_noise_draws_share_one_context_projection_and_equal_repeated_examples(tiny_config):
    """draws=k projects each example's context once; loss and gradients equal k explicit copies of it."""
    from evo1cli.model.action_head import Masks
    from evo1cli.model.flow_matching import flow_matching_loss
    from evo1cli.smoke import synthetic_batch

    config = tiny_config.replace(horizon=16, image_size=56)
    policy = Evo1Model.build(config)
    policy.freeze_backbone(False)
    batch, _ = synthetic_batch(config, batch_size=3)
    shared = policy(batch, torch.Generator().manual_seed(5), draws=3)
    shared.backward()
    grads = [p.grad.clone() for p in policy.parameters() if p.requires_grad]
    policy.zero_grad()

    context, valid = policy.embed(batch.pixel_values, batch.image_mask, batch.prompts)
    context, valid, state, actions, action_mask, is_pad = (
        x.repeat_interleave(3, dim=0)
        for x in (context, valid, batch.state, batch.actions, batch.action_mask, batch.action_is_pad)
    )
    masks = Masks(context=valid, action=action_mask)
    copies = flow_matching_loss(
        policy.action_head, context, state, masks, actions, is_pad, torch.Generator().manual_seed(5)
    )
    copies.backward()
    torch.testing.assert_close(shared, copies)
    for g, p in zip(grads, (p for p in policy.parameters() if p.requires_grad), strict=True):
        torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=1e-4)  # the backbone's gradients included


def test_the_instruction_reaches_the_actions(tiny_policy, tiny_config):
    """Same images, state and noise: the two drawer prompts give different chunks, a repeated one the same."""
    base = make_observation(4)
    asked = [dataclasses.replace(base, prompt=p) for p in ("Open a drawer", "Push and close a drawer", "Open a drawer")]
    chunks = tiny_policy.predict(asked, noise=fixed_noise(1, tiny_config).repeat(3, 1, 1))
    np.testing.assert_allclose(chunks[0], chunks[2], atol=1e-6)
    assert np.abs(chunks[0] - chunks[1]).max() > 1e-3
