import math

import pytest
import torch

from evo1cli.errors import Evo1Error
from evo1cli.model.action_head import ActionHead, Masks, expand_action_mask, sinusoid_table
from evo1cli.model.config import Evo1Config


def authors_head_layout(e=896, h=50, d=24, blocks=8, ff=3584, hidden=1024, state_hidden=1024, state=24):
    """The authors' action-head parameter names and shapes, written out from their checkpoints."""
    shapes = {
        "time_pos_enc.pe": (1, 1000, e),
        "action_encoder.pos_encoding.pe": (1, h, e),
        "norm_out.weight": (e,), "norm_out.bias": (e,),
        "seq_pool_proj.weight": (e, h * e), "seq_pool_proj.bias": (e,),
        "mlp_head.fc1.linear.weight": (hidden, e), "mlp_head.fc1.linear.bias": (hidden,),
        "mlp_head.fc2.linear.weight": (h * d, hidden), "mlp_head.fc2.linear.bias": (h * d,),
        "state_encoder.fc1.linear.weight": (state_hidden, state), "state_encoder.fc1.linear.bias": (state_hidden,),
        "state_encoder.fc2.linear.weight": (e, state_hidden), "state_encoder.fc2.linear.bias": (e,),
        "action_encoder.W1.linear.weight": (e, d), "action_encoder.W1.linear.bias": (e,),
        "action_encoder.W2.linear.weight": (e, e), "action_encoder.W2.linear.bias": (e,),
        "action_encoder.W3.linear.weight": (e, e), "action_encoder.W3.linear.bias": (e,),
    }  # fmt: skip
    for i in range(blocks):
        p = f"transformer_blocks.{i}."
        shapes.update({
            p + "attn.in_proj_weight": (3 * e, e), p + "attn.in_proj_bias": (3 * e,),
            p + "attn.out_proj.weight": (e, e), p + "attn.out_proj.bias": (e,),
            p + "norm1.weight": (e,), p + "norm1.bias": (e,), p + "norm2.weight": (e,), p + "norm2.bias": (e,),
            p + "ff.0.weight": (ff, e), p + "ff.0.bias": (ff,), p + "ff.2.weight": (e, ff), p + "ff.2.bias": (e,),
        })  # fmt: skip
    return shapes


@pytest.fixture(scope="module")
def full_head():
    torch.manual_seed(0)
    return ActionHead(Evo1Config())


@pytest.mark.slow
def test_full_size_parameter_count(full_head):
    assert sum(p.numel() for p in full_head.parameters()) == 122_029_360


@pytest.mark.slow
def test_loads_an_authors_layout_state_dict_strictly(full_head):
    g = torch.Generator().manual_seed(1)
    authors = {k: torch.randn(shape, generator=g) * 0.02 for k, shape in authors_head_layout().items()}
    full_head.load_state_dict(authors, strict=True)
    assert torch.equal(full_head.transformer_blocks[7].ff[2].weight, authors["transformer_blocks.7.ff.2.weight"])
    assert torch.equal(full_head.mlp_head.fc2.linear.bias, authors["mlp_head.fc2.linear.bias"])


def test_sinusoid_table_formula():
    pe = sinusoid_table(60, 16)[0]
    p, i = 37, 3
    assert pe[p, 2 * i].item() == pytest.approx(math.sin(p * 10000 ** (-2 * i / 16)), abs=1e-5)
    assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p * 10000 ** (-2 * i / 16)), abs=1e-5)


@pytest.fixture
def head():
    torch.manual_seed(0)
    return ActionHead(Evo1Config.preset("tiny")).eval()


def inputs(head, b=3, t=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = head.seq_pool_proj.weight.shape[0]
    context = torch.randn(b, t, e, generator=g)
    state = torch.randn(b, head.state_dim, generator=g)
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[0, 7:] = False  # sample 0 has 4 padding tokens
    action = torch.zeros(b, head.action_dim, dtype=torch.bool)
    action[:, :4] = True
    x = torch.rand(b, head.horizon, head.action_dim, generator=g) * 2 - 1
    return x, torch.rand(b, generator=g), context, state, Masks(valid, action)


def test_velocity_shape_and_action_mask(head):
    x, t, context, state, masks = inputs(head)
    v = head.velocity(x, t, context, state, masks)
    assert v.shape == (3, 50, 24)
    assert torch.all(v[..., 4:] == 0)
    assert v[..., :4].abs().sum() > 0


def test_masked_context_tokens_do_not_matter(head):
    x, t, context, state, masks = inputs(head)
    v = head.velocity(x, t, context, state, masks)
    poisoned = context.clone()
    poisoned[0, 7:] = 1e4
    assert torch.equal(v, head.velocity(x, t, poisoned, state, masks))
    poisoned[0, 3] = 1e4  # a valid token does matter
    assert not torch.allclose(v[0], head.velocity(x, t, poisoned, state, masks)[0])


def test_cached_context_equals_recomputed(head):
    x, t, context, state, masks = inputs(head)
    cache = head.prepare_context(context, state, masks)
    assert torch.allclose(
        head.velocity(x, t, context, state, masks, cache=cache), head.velocity(x, t, context, state, masks)
    )


def test_eager_and_sdpa_agree(head):
    x, t, context, state, masks = inputs(head)
    v_sdpa = head.velocity(x, t, context, state, masks)
    head.attn_implementation = "eager"
    assert torch.allclose(v_sdpa, head.velocity(x, t, context, state, masks), atol=1e-6)


def test_time_index_is_floor_t_times_scale(head):
    t = torch.tensor([0.0, 0.02, 0.5, 0.999, 1.0])
    rows = head.time_embedding(t)
    for row, index in zip(rows, [0, 19, 499, 998, 999], strict=True):
        assert torch.equal(row, head.time_pos_enc.pe[0, index])


def test_action_mask_shapes():
    assert expand_action_mask(torch.ones(2, 24), 50, 24).shape == (2, 50, 24)
    assert expand_action_mask(torch.ones(2, 50, 24), 50, 24).shape == (2, 50, 24)
    with pytest.raises(Evo1Error, match="action_mask"):
        expand_action_mask(torch.ones(2, 1, 1, 24), 50, 24)
