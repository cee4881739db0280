"""What the twin's demonstrations teach when the cube's pose is known: the tiny action head against an MLP.

No pixels: each learner reads the joints and the cube's starting pose (x, y, yaw), as Meta-World's state gives
its object, so what is measured is the step from a known cube to joint actions, the one that remains once
perception is solved. Demonstrations are the xArm6 scene's scripted pick-and-place (`Scene.plan`, the plan the
scripted person follows in `evo1 collect --sim`) played straight into the physics at 30 Hz, no rendering;
placements `0..N-1`, as a collection with `--seed 0` uses. Both learners predict chunks of `--horizon` actions
(the arm joints as offsets from the present ones, the gripper absolute: the twin recipe's `relative_dims: 6`),
normalised to bounds, batch `--batch`, AdamW 3e-4 with a cosine decay, `--steps` steps:

- mlp:   three hidden layers of 512, regression. The baseline: what the demonstrations allow.
- head:  the tiny preset's action head (`ActionHead`: the state token, cross-attention, flow matching), its
         state the same 10 values, its chunks sampled from uniform noise in 10 Euler steps as deploy samples;
         `--context N` puts N constant tokens beside the state token, as the instruction's tokens are in the
         policy (the tiny byte tokenizer spells it in 48); `--hidden W` widens its state encoder and output
         MLP from the tiny preset's 256 (the full model's are 1024).

Each is then deployed in closed loop on `--episodes` placements collection never used (seed 1,000,000 + k):
a chunk every 8 ticks, the set-point limited per tick as the xArm6 configuration's `max_step` limits it,
success as `evo1 deploy --sim` judges it. Printed last: the head's success over the MLP's.

    python benchmarks/twin_oracle.py [--demos 70] [--steps 2800] [--batch 32] [--context 0] [--hidden 256] \\
        [--episodes 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from evo1cli.model.action_head import ActionHead, Masks
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import flow_matching_loss, sample_actions
from evo1cli.model.normalization import FeatureStats, Normalizer
from evo1cli.model.relative_actions import to_absolute, to_relative
from evo1cli.robots.config import default_config_path, load_robot_config
from evo1cli.robots.fakes.twin_xarm6 import PULSES_OPEN, SkippingClock
from evo1cli.sim.twin import open_scene
from evo1cli.sim.twin.world import TwinWorld
from evo1cli.sim.twin.xarm6 import FINGER_OPEN

TICK_S = 1 / 30
ACTION_STEPS = 8  # actions executed per chunk, as the quickstart deploys
EPISODE_S = 18.0
DEPLOY_SEED = 1_000_000
ARM = 6  # the joints whose actions are offsets from the state

Policy = Callable[[np.ndarray], np.ndarray]  # features (10,) -> chunk (H, 7), MJCF units


class Twin:
    """The xArm6 twin's world run tick by tick as fast as the CPU allows (its clock moves only when `tick` moves
    it), with a set-point that moves at most `max_step` per tick. MJCF units: radians, metres."""

    def __init__(self) -> None:
        self.clock = SkippingClock(lambda: 0.0)
        self.world = TwinWorld(open_scene("xarm6"), {}, clock=self.clock)
        self.setpoint = self.world.joint_positions()

    def reset(self, seed: int) -> None:
        self.world.reset(seed)
        self.setpoint = self.world.joint_positions()

    def features(self) -> np.ndarray:
        """(10,) the joints, then the cube's starting (x, y, yaw)."""
        x, y, _z, yaw = self.world.placement.cube
        return np.array([*self.world.joint_positions(), x, y, yaw])

    def tick(self, target: np.ndarray, max_step: np.ndarray | None = None) -> None:
        step = target - self.setpoint
        self.setpoint = self.setpoint + (step if max_step is None else np.clip(step, -max_step, max_step))
        self.world.set_targets(self.setpoint)
        self.clock.skipped += TICK_S
        self.world.sync()


def demonstrations(twin: Twin, count: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """`count` successful scripted demonstrations: (features (T, 10), actions (T, 7)) each, and attempts used."""
    demos, seed = [], 0
    while len(demos) < count:
        twin.reset(seed)
        plan = twin.world.plan(np.random.default_rng(seed))
        features, actions = [], []
        for k in range(int((plan.duration + 0.6) / TICK_S)):
            action = plan.at(k * TICK_S)
            features.append(twin.features())
            actions.append(action)
            twin.tick(action)
        if twin.world.success():
            demos.append((np.array(features), np.array(actions)))
        seed += 1
    return demos, seed


def chunks(features: np.ndarray, actions: np.ndarray, horizon: int) -> np.ndarray:
    """(T, H, 7) the next H actions from each frame (the last one repeated past the end), arm joints relative."""
    index = np.minimum(np.arange(len(actions))[:, None] + np.arange(horizon)[None], len(actions) - 1)
    return to_relative(actions[index], features, ARM)


def learn(kind: str, demos: list, args: argparse.Namespace) -> tuple[Policy, float]:
    torch.manual_seed(0)
    x = np.concatenate([f for f, _ in demos])
    y = np.concatenate([chunks(f, a, args.horizon) for f, a in demos])
    normalizer = Normalizer("bounds")
    x_stats = FeatureStats(min=x.min(0), max=x.max(0))
    y_stats = FeatureStats(min=y.reshape(-1, 7).min(0), max=y.reshape(-1, 7).max(0))
    config = Evo1Config.preset("tiny", horizon=args.horizon, state_hidden_dim=args.hidden, hidden_dim=args.hidden)
    xs = normalizer.normalize(x, x_stats)[:, : config.state_dim]  # (N, 24)
    ys = normalizer.normalize(y, y_stats)[..., : config.action_dim]  # (N, H, 24)
    action_mask = torch.zeros(config.action_dim, dtype=torch.bool)
    action_mask[:7] = True
    context = torch.randn(1, args.context, config.embed_dim) * 0.5  # constant, like the instruction's tokens
    generator = torch.Generator().manual_seed(0)

    if kind == "mlp":
        net = nn.Sequential(nn.Linear(10, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 512),
                            nn.GELU(), nn.Linear(512, args.horizon * 7))  # fmt: skip

        def loss_of(batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
            return (net(batch_x[:, :10]) - batch_y[..., :7].flatten(1)).square().mean()

        def answer(f: torch.Tensor) -> torch.Tensor:
            return net(f[:, :10]).view(1, args.horizon, 7)
    else:
        net = ActionHead(config)

        def masks(b: int) -> Masks:
            return Masks(context=torch.ones(b, args.context, dtype=torch.bool), action=action_mask.expand(b, -1))

        def loss_of(batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
            b = len(batch_x)
            return flow_matching_loss(net, context.expand(b, -1, -1), batch_x, masks(b), batch_y)

        def answer(f: torch.Tensor) -> torch.Tensor:  # from uniform noise, as deploy samples
            return sample_actions(net, context, f, masks(1), config.num_inference_steps, generator=generator)

    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    loss = torch.tensor(0.0)
    for _ in range(args.steps):
        pick = torch.randint(0, len(xs), (args.batch,))
        loss = loss_of(xs[pick], ys[pick])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    net.eval()

    @torch.no_grad()
    def policy(features: np.ndarray) -> np.ndarray:
        chunk = normalizer.denormalize(answer(normalizer.normalize(features, x_stats)[None, : config.state_dim]),
                                       y_stats)[0].numpy()  # fmt: skip
        return to_absolute(chunk, features, ARM)

    return policy, loss.item()


def deploy(twin: Twin, policy: Policy, episodes: int, max_step: np.ndarray) -> int:
    """Successes in closed loop on placements DEPLOY_SEED + k."""
    successes = 0
    for k in range(episodes):
        twin.reset(DEPLOY_SEED + k)
        for tick in range(int(EPISODE_S / TICK_S)):
            if tick % ACTION_STEPS == 0:
                chunk = policy(twin.features())
            twin.tick(chunk[tick % ACTION_STEPS], max_step)
            if tick % 15 == 14 and twin.world.success():
                successes += 1
                break
    return successes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=70)
    parser.add_argument("--steps", type=int, default=2800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--context", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=Evo1Config.preset("tiny").hidden_dim)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    limits = load_robot_config(default_config_path("xarm6")).limits.max_step
    max_step = np.array([*np.radians(limits[:ARM]), limits[ARM] / PULSES_OPEN * FINGER_OPEN])  # to MJCF units

    twin = Twin()
    start = time.perf_counter()
    demos, attempts = demonstrations(twin, args.demos)
    took = time.perf_counter() - start
    print(f"{len(demos)} demonstrations ({attempts} attempts) in {took:.0f} s; {args.steps} steps of batch "
          f"{args.batch}, horizon {args.horizon}, {args.context} context tokens, head width {args.hidden}")  # fmt: skip
    success = {}
    for kind in ("mlp", "head"):
        start = time.perf_counter()
        policy, loss = learn(kind, demos, args)
        trained = time.perf_counter() - start
        success[kind] = deploy(twin, policy, args.episodes, max_step)
        print(f"{kind:5s} final loss {loss:.4f}, trained in {trained:.0f} s: "
              f"{success[kind]} / {args.episodes} on unseen placements")  # fmt: skip
    ratio = success["head"] / max(success["mlp"], 1)
    print(f"head / mlp success: {ratio:.2f} ({success['head']} / {success['mlp']})")


if __name__ == "__main__":
    main()
