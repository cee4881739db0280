"""Can the tiny model learn from the twin's pixels where the cube is? A learnability probe of the vision path.

The twin places the cube by seed; with the arm at home, both cameras are rendered at the tiny model's size.
Two learners start from the same random tiny backbone and learn the cube's (x, y) from `--placements` placements,
judged on 200 placements they never saw and on those they learnt from (median error in cm; guessing the region's
centre is the chance level):

- readout:  the vision tower alone, its image tokens flattened into an MLP, trained by regression. What the
            pixels carry, reachable in a few hundred steps.
- policy:   the whole policy on the path every action takes (vision tower, LLM, the action head's cross-
            attention), trained with its own flow-matching loss on chunks whose first two dims are the cube's
            normalised (x, y); the answer is the mean of a sampled chunk (10 Euler steps, fixed noise).

`--projector-gain G` multiplies the random projector's last layer by G in both learners (an experiment: its
image tokens, rms 0.03 as transformers initialises them, enter the LLM below what each random layer adds).

Printed last: the policy's error over the readout's after the same number of steps. A ratio near the chance
level's over the readout's means the policy has not found the cube in its pixels; an error near chance on its
own training placements too means it has not even learnt them by heart (optimisation, not generalisation).

    python benchmarks/twin_vision.py [--robot xarm6] [--placements 70] [--steps 1200] [--threads 2] \\
        [--projector-gain 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

from evo1cli.model.action_head import Masks
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import sample_actions
from evo1cli.model.images import to_pixel_values
from evo1cli.model.normalization import FeatureStats, Normalizer
from evo1cli.model.policy import Batch, Evo1Model
from evo1cli.sim.twin import open_scene
from evo1cli.sim.twin.scene import mujoco_module

TEST = 200  # held-out placements


def render(robot: str, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(count, views, 3, S, S) normalised pixels of the home pose and (count, 2) cube positions in metres."""
    mujoco = mujoco_module()
    scene = open_scene(robot)
    model = scene.build()
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, size, size)
    views, cubes = [], []
    for seed in range(count):
        cubes.append(scene.place(model, data, seed).cube[:2])
        frames = []
        for camera in scene.cameras.values():
            renderer.update_scene(data, camera=camera)
            frames.append(renderer.render())  # a new (S, S, 3) uint8 array each call
        views.append(to_pixel_values(frames, size))
    renderer.close()
    return torch.stack(views), torch.tensor(np.array(cubes), dtype=torch.float32), scene.instruction


class Readout(nn.Module):
    """The vision tower's tokens of the first view, flattened, into (x, y)."""

    def __init__(self, policy: Evo1Model):
        super().__init__()
        self.backbone = policy.backbone
        tokens, width = self.backbone.tokens_per_image, self.backbone.hidden_size
        self.head = nn.Sequential(nn.Linear(tokens * width, 256), nn.GELU(), nn.Linear(256, 2))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, V, 3, S, S) -> (B, 2)
        return self.head(self.backbone.encode_images(pixels[:, 0]).flatten(1))


def policy_batch(policy: Evo1Model, pixels: torch.Tensor, target: torch.Tensor, prompt: str) -> Batch:
    """A chunk whose first two dims hold the normalised cube position at every step; 7 action dims active."""
    b, v = pixels.shape[:2]
    cfg = policy.config
    actions = torch.zeros(b, cfg.horizon, cfg.action_dim)
    actions[:, :, :2] = target[:, None, :]
    mask = torch.zeros(b, cfg.action_dim, dtype=torch.bool)
    mask[:, :7] = True
    return Batch(pixels.flatten(0, 1), torch.ones(b, v, dtype=torch.bool), [prompt] * b,
                 torch.zeros(b, cfg.state_dim), actions, mask)  # fmt: skip


def policy_answer(policy: Evo1Model, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
    batch = policy_batch(policy, pixels, torch.zeros(len(pixels), 2), prompt)
    policy.eval()  # called under torch.no_grad()
    context, valid = policy.embed(batch.pixel_values, batch.image_mask, batch.prompts)
    noise = torch.zeros(len(pixels), policy.config.horizon, policy.config.action_dim)
    chunk = sample_actions(policy.action_head, context, batch.state, Masks(valid, batch.action_mask), 10, noise)
    policy.train()
    return chunk[:, :, :2].mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="xarm6", choices=["xarm6", "so100"])
    parser.add_argument("--placements", type=int, default=70)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--projector-gain", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = Evo1Config.preset("tiny", horizon=16, num_views=2, num_inference_steps=10)
    pixels, cubes, prompt = render(args.robot, args.placements + TEST, config.image_size)
    normalizer = Normalizer("bounds", pad_to=2)
    stats = FeatureStats(min=cubes.min(0).values.numpy(), max=cubes.max(0).values.numpy())
    target = normalizer.normalize(cubes, stats)
    train, test = slice(0, args.placements), slice(len(cubes) - TEST, len(cubes))

    def error_cm(normalised: torch.Tensor, which: slice) -> float:
        metres = normalizer.denormalize(normalised, stats)
        return float(((metres - cubes[which]).norm(dim=1) * 100).median())

    chance = error_cm(target[train].mean(0).expand(TEST, 2), test)
    readout, policy = Readout(Evo1Model.build(config)), Evo1Model.build(config)
    with torch.no_grad():
        for projector in (readout.backbone.model.multi_modal_projector, policy.backbone.model.multi_modal_projector):
            projector.linear_2.weight.mul_(args.projector_gain)
    learners = {
        "readout": (readout, lambda idx: (readout(pixels[idx]) - target[idx]).square().mean(),
                    lambda which: readout(pixels[which])),
        "policy": (policy, lambda idx: policy(policy_batch(policy, pixels[idx], target[idx], prompt), draws=4),
                   lambda which: policy_answer(policy, pixels[which], prompt)),
    }  # fmt: skip
    print(f"{args.robot}: {args.placements} placements, {TEST} held out, projector gain {args.projector_gain:g}; "
          f"chance level {chance:.1f} cm")  # fmt: skip
    final = {}
    for name, (module, loss_of, answer) in learners.items():
        optimiser = torch.optim.AdamW(module.parameters(), 3e-4, weight_decay=1e-3)
        generator, started = torch.Generator().manual_seed(1), time.perf_counter()
        for step in range(1, args.steps + 1):
            loss = loss_of(torch.randint(0, args.placements, (32,), generator=generator))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimiser.step()
            if step % max(1, args.steps // 6) == 0 or step == args.steps:
                with torch.no_grad():
                    final[name] = error_cm(answer(test), test)
                    own = error_cm(answer(train), train)
                print(f"  {name:8s} step {step:5d}: loss {loss.item():.4f}, held-out error {final[name]:.2f} cm, "
                      f"on its training placements {own:.2f} cm ({time.perf_counter() - started:.0f} s)",
                      flush=True)  # fmt: skip
    print(f"policy / readout held-out error after {args.steps} steps: {final['policy'] / final['readout']:.1f}x "
          f"(chance / readout: {chance / final['readout']:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
