"""A self-contained check of the model core: fit a policy to one fixed synthetic batch.

Used by `evo1 smoke` (a minutes-long check of the model core, offline) and by the overfit test:
build a policy, fit its action head to a fixed batch until the flow-matching loss has fallen, sample
chunks from noise and compare them with the targets, save a checkpoint, load it back and check that
it gives bit-identical actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evo1cli.model.action_head import Masks
from evo1cli.model.checkpoint import load_policy, save_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import flow_matching_loss, sample_actions
from evo1cli.model.images import to_pixel_values
from evo1cli.model.normalization import NormStats, StatsTable
from evo1cli.model.policy import Batch, Evo1Model, Observation

NATIVE_STATE_DIM, NATIVE_ACTION_DIM = 8, 4  # Meta-World's dims
PROMPTS = ("Press a button from the top", "Reach a goal position", "Push and close a window", "Open a drawer")


def synthetic_batch(config: Evo1Config, batch_size: int = 4, seed: int = 0) -> tuple[Batch, list[list[np.ndarray]]]:
    """A fixed model-space batch: random views (one or two per sample), smooth target chunks in
    [-1, 1] on the first 4 action dims, and the last 10 steps of sample 0 flagged as padding."""
    rng = np.random.default_rng(seed)
    h, s = config.horizon, config.image_size
    views = min(2, config.num_views)
    image_mask = torch.zeros(batch_size, config.num_views, dtype=torch.bool)
    images: list[list[np.ndarray]] = []
    for b in range(batch_size):
        n = 1 + b % views
        image_mask[b, :n] = True
        images.append([rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(n)])
    state = torch.zeros(batch_size, config.state_dim)
    state[:, :NATIVE_STATE_DIM] = torch.from_numpy(rng.uniform(-1, 1, (batch_size, NATIVE_STATE_DIM)))
    phase = rng.uniform(0, 2 * np.pi, (batch_size, 1, NATIVE_ACTION_DIM))
    steps = np.linspace(0, np.pi, h)[None, :, None]
    actions = torch.zeros(batch_size, h, config.action_dim)
    actions[:, :, :NATIVE_ACTION_DIM] = torch.from_numpy(0.8 * np.sin(steps + phase))
    action_mask = torch.zeros(batch_size, config.action_dim, dtype=torch.bool)
    action_mask[:, :NATIVE_ACTION_DIM] = True
    action_is_pad = torch.zeros(batch_size, h, dtype=torch.bool)
    action_is_pad[0, h - min(10, h - 1) :] = True
    batch = Batch(
        pixel_values=to_pixel_values([img for sample in images for img in sample], s),
        image_mask=image_mask,
        prompts=[PROMPTS[b % len(PROMPTS)] for b in range(batch_size)],
        state=state,
        actions=actions,
        action_mask=action_mask,
        action_is_pad=action_is_pad,
    )
    return batch, images


def overfit(
    policy: Evo1Model,
    batch: Batch,
    steps: int,
    lr: float = 3e-4,
    draws: int = 16,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fit the action head to `batch` on the frozen backbone's context (stage 1's split).

    Each step sees every example `draws` times with fresh noise and times, which is what lets
    the head learn the velocity's dependence on x_t within a few hundred steps. Returns the
    loss of each step.
    """
    with torch.no_grad():
        context, valid = policy.embed(batch.pixel_values, batch.image_mask, batch.prompts)

    def repeat(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(draws, dim=0)

    masks = Masks(context=repeat(valid), action=repeat(batch.action_mask))
    is_pad = None if batch.action_is_pad is None else repeat(batch.action_is_pad)
    head = policy.action_head
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    head.train()
    losses = []
    for step in range(steps):
        loss = flow_matching_loss(
            head, repeat(context), repeat(batch.state), masks, repeat(batch.actions), is_pad, generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    head.eval()
    return losses


@torch.no_grad()
def sample_error(policy: Evo1Model, batch: Batch, seed: int = 0) -> float:
    """Mean absolute error between sampled chunks and the batch's targets, over active elements."""
    context, valid = policy.embed(batch.pixel_values, batch.image_mask, batch.prompts)
    masks = Masks(context=valid, action=batch.action_mask)
    generator = torch.Generator().manual_seed(seed)
    chunk = sample_actions(
        policy.action_head, context, batch.state, masks, policy.config.num_inference_steps, generator=generator
    )
    active = batch.action_mask[:, None, :].expand_as(chunk).clone()
    if batch.action_is_pad is not None:
        active &= ~batch.action_is_pad[:, :, None]
    return float((chunk - batch.actions).abs()[active].mean())


@dataclass
class SmokeReport:
    parameters: int
    losses: list[float]
    error_before: float
    error_after: float
    train_seconds: float
    checkpoint: Path
    reload_identical: bool
    latency_ms: float


SMOKE_HORIZON = 8  # a short chunk, so that fitting takes seconds on a CPU


def smoke(
    out: str | Path, preset: str = "tiny", steps: int = 600, lr: float = 3e-4,
    on_step: Callable[[int, float], None] | None = None,
) -> SmokeReport:  # fmt: skip
    config = Evo1Config.preset(preset, horizon=SMOKE_HORIZON)
    stats = StatsTable()
    stats.add("synthetic", "smoke", NormStats.identity(NATIVE_STATE_DIM, NATIVE_ACTION_DIM))
    policy = Evo1Model.build(config, stats=stats)
    batch, images = synthetic_batch(config)
    error_before = sample_error(policy, batch)
    start = time.perf_counter()
    losses = overfit(policy, batch, steps, lr, on_step=on_step)
    train_seconds = time.perf_counter() - start
    error_after = sample_error(policy, batch)

    checkpoint = save_policy(policy, out)
    observation = Observation(
        images=images[0], prompt=batch.prompts[0], state=batch.state[0, :NATIVE_STATE_DIM].numpy()
    )
    noise = torch.rand(1, config.horizon, config.action_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    start = time.perf_counter()
    before = policy.predict([observation], noise=noise)[0]
    latency_ms = (time.perf_counter() - start) * 1000
    after = load_policy(checkpoint).predict([observation], noise=noise)[0]
    return SmokeReport(
        parameters=sum(p.numel() for p in policy.parameters()),
        losses=losses,
        error_before=error_before,
        error_after=error_after,
        train_seconds=train_seconds,
        checkpoint=checkpoint,
        reload_identical=bool(np.array_equal(before, after)),
        latency_ms=latency_ms,
    )
