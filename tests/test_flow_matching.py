import pytest
import torch

from evo1cli.errors import Evo1Error
from evo1cli.model.action_head import ActionHead, Masks
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import flow_matching_loss, sample_actions, sample_time, uniform_noise


class RecordingHead(ActionHead):
    """A real tiny head whose velocity is replaced by a known field, to check the integrator and loss."""

    def __init__(self, field):
        super().__init__(Evo1Config.preset("tiny", horizon=6))
        self.field = field
        self.calls = []

    def velocity(self, x_t, t, context, state, masks, cache=None):
        self.calls.append((x_t.clone(), t.clone(), cache))
        return self.field(x_t, t) * masks.action[:, None, :]


def masks(b=2, dims=3):
    action = torch.zeros(b, 24, dtype=torch.bool)
    action[:, :dims] = True
    return Masks(torch.ones(b, 5, dtype=torch.bool), action)


def test_time_distribution_is_clamped_beta22():
    t = sample_time(200_000, torch.Generator().manual_seed(0))
    assert t.min() >= 0.02 and t.max() <= 0.98
    assert t.mean().item() == pytest.approx(0.5, abs=0.005)
    assert t.var().item() == pytest.approx(1 / 20, abs=0.002)  # Beta(2, 2): variance 1/20


def test_noise_is_uniform_minus_one_to_one():
    n = uniform_noise((100_000,), torch.Generator().manual_seed(0))
    assert n.min() >= -1 and n.max() <= 1
    assert n.var().item() == pytest.approx(1 / 3, abs=0.01)


def test_euler_sampler_integrates_the_field():
    target = torch.linspace(-0.5, 0.5, 6 * 24).view(1, 6, 24).repeat(2, 1, 1)
    head = RecordingHead(lambda x, t: (target - x) / (1 - t[:, None, None]))  # straight paths to `target`
    noise = torch.rand(2, 6, 24) * 2 - 1
    out = sample_actions(head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks(), 10, noise=noise)
    m = masks().action[:, None, :]
    assert torch.allclose(out, target * m, atol=1e-5)
    assert torch.all(out[..., 3:] == 0)
    assert [round(c[1][0].item(), 6) for c in head.calls] == [i / 10 for i in range(10)]
    assert all(c[2] is head.calls[0][2] and c[2] is not None for c in head.calls), "one context cache per chunk"


def test_sampler_uses_given_noise_and_masks_it():
    head = RecordingHead(lambda x, t: torch.zeros_like(x))
    noise = torch.rand(2, 6, 24) * 2 - 1
    out = sample_actions(head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks(), 4, noise=noise)
    assert torch.equal(out, noise * masks().action[:, None, :])
    with pytest.raises(Evo1Error, match="noise"):
        sample_actions(head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks(), 4, noise=torch.zeros(2, 5, 24))


def test_loss_matches_the_definition():
    head = RecordingHead(lambda x, t: torch.full_like(x, 0.3))
    actions = torch.rand(2, 6, 24) * 2 - 1
    loss = flow_matching_loss(head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks(), actions,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    x_t, t, _ = head.calls[0]
    g = torch.Generator().manual_seed(0)  # replay the draws: noise first, then t
    noise = uniform_noise((2, 6, 24), g) * masks().action[:, None, :]
    assert torch.allclose(t, sample_time(2, g))
    a = actions * masks().action[:, None, :]
    assert torch.allclose(x_t, (1 - t[:, None, None]) * noise + t[:, None, None] * a)
    expected = ((0.3 - (a - noise))[..., :3] ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_ignores_padded_steps_and_dims():
    head = RecordingHead(lambda x, t: torch.zeros_like(x))
    actions = torch.zeros(2, 6, 24)
    args = (head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks())
    is_pad = torch.zeros(2, 6, dtype=torch.bool)
    is_pad[1, 3:] = True
    base = flow_matching_loss(*args, actions, is_pad, torch.Generator().manual_seed(0))
    poisoned = actions.clone()
    poisoned[1, 3:] = 100.0  # past the episode's end
    poisoned[:, :, 3:] = 100.0  # padded action dims
    assert flow_matching_loss(*args, poisoned, is_pad, torch.Generator().manual_seed(0)) == base
    poisoned[0, 0, 0] = 100.0  # an active element does count
    assert flow_matching_loss(*args, poisoned, is_pad, torch.Generator().manual_seed(0)) > base + 100


def test_loss_with_nothing_active_is_an_error():
    head = RecordingHead(lambda x, t: x)
    with pytest.raises(Evo1Error, match="no active"):
        flow_matching_loss(head, torch.zeros(2, 5, 128), torch.zeros(2, 24), masks(), torch.zeros(2, 6, 24),
                           torch.ones(2, 6, dtype=torch.bool))  # fmt: skip
