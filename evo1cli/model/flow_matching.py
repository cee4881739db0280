"""Flow matching: the training loss and the Euler sampler of the action head.

Noise is uniform in [-1, 1] (not Gaussian) and zero on inactive action dims. With t = 0 noise and
t = 1 data, x_t = (1 - t) * noise + t * actions and the target velocity is actions - noise.

Training draws t ~ Beta(2, 2) clamped to [0.02, 0.98]; the loss is the squared error summed over
active elements (action dims that exist, time steps before the episode's end) divided by their count.
Inference integrates N explicit Euler steps a <- a + v(a, i / N) / N from masked noise.
"""

from __future__ import annotations

import torch

from evo1cli.errors import Evo1Error
from evo1cli.model.action_head import ActionHead, HeadContext, Masks, expand_action_mask

T_MIN, T_MAX = 0.02, 0.98


def uniform_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device) * 2 - 1


def sample_time(batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """t ~ Beta(2, 2) clamped to [0.02, 0.98]: the median of three U(0, 1) draws is Beta(2, 2)."""
    u = torch.rand(batch, 3, generator=generator, device=device)
    return u.median(dim=1).values.clamp(T_MIN, T_MAX)


def flow_matching_loss(
    head: ActionHead,
    context: torch.Tensor,
    state: torch.Tensor,
    masks: Masks,
    actions: torch.Tensor,
    action_is_pad: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    cache: HeadContext | None = None,
) -> torch.Tensor:
    """Masked flow-matching loss of a batch of normalised, padded action chunks (B, H, D).

    `masks.action` masks padded action dims; `action_is_pad` (B, H) masks time steps past the end
    of an episode. Both are excluded from the loss. `cache` (the context's projections, see
    `ActionHead.prepare_context`) replaces context and state.
    """
    b, h, d = actions.shape
    dim_mask = expand_action_mask(masks.action, h, d).to(actions.device)
    active = dim_mask if action_is_pad is None else dim_mask & ~action_is_pad.bool()[:, :, None]
    if not active.any():
        raise Evo1Error("the batch has no active action element", field="action_mask")
    actions = actions.float() * dim_mask
    noise = uniform_noise((b, h, d), generator, actions.device) * dim_mask
    t = sample_time(b, generator, actions.device)
    x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
    velocity = head.velocity(x_t, t, context, state, masks, cache=cache)
    error = (velocity.float() - (actions - noise)).square()
    return (error * active).sum() / active.sum()


@torch.no_grad()
def sample_actions(
    head: ActionHead,
    context: torch.Tensor,
    state: torch.Tensor,
    masks: Masks,
    num_steps: int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    cache_context: bool = True,
) -> torch.Tensor:
    """Integrate the velocity field from masked uniform noise: (B, H, D) float32 normalised actions.

    `noise` fixes the starting point (B, H, D); otherwise it is drawn from `generator`.
    `cache_context=False` recomputes the context projections every step (only for benchmarks).
    """
    b = context.shape[0]
    mask = expand_action_mask(masks.action, head.horizon, head.action_dim).to(context.device)
    if noise is None:
        noise = uniform_noise((b, head.horizon, head.action_dim), generator, context.device)
    elif tuple(noise.shape) != tuple(mask.shape):
        raise Evo1Error(f"expected shape {tuple(mask.shape)}, got {tuple(noise.shape)}", field="noise")
    a = noise.float().to(context.device) * mask
    cache = head.prepare_context(context, state, masks) if cache_context else None
    for i in range(num_steps):
        t = torch.full((b,), i / num_steps, device=context.device)
        a = a + head.velocity(a, t, context, state, masks, cache=cache).float() / num_steps
    return a * mask
