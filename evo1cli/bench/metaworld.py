"""Closed-loop Meta-World rollouts: the policy sees what the datasets record and acts in chunks.

Per query: the corner2 image (the authors' pipeline, at the policy's image size), state = the first 8
observation entries, the task's prompt; the first `execute` actions of the chunk (15 in the authors'
protocol) are applied, clipped to [-1, 1]. An episode ends on success or after `max_steps` (400).

Episode k of a task uses seed `seed + k` and a variation drawn from it, as `evo1 collect` does, so the
default evaluation seeds (4042 + k) never coincide with collection's (0 + k). The policy's noise is
seeded by the episode's seed too, so an evaluation is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from evo1cli.model.policy import Evo1Policy, Observation
from evo1cli.sim.metaworld import MetaWorldEnv, episode_variation

MAX_STEPS = 400
EXECUTE = 15
EVAL_SEED = 4042


@dataclass
class EpisodeResult:
    task: str
    seed: int
    variation: int
    success: bool
    steps: int  # environment steps until success (or the limit)
    queries: int  # policy calls


def run_episode(
    policy: Evo1Policy,
    env: MetaWorldEnv,
    max_steps: int = MAX_STEPS,
    execute: int = EXECUTE,
    embodiment: str | None = None,
    dataset: str | None = None,
) -> EpisodeResult:
    obs = env.reset()
    generator = torch.Generator().manual_seed(env.seed)  # the chunks' noise: a rerun repeats the episode
    success, steps, queries = False, 0, 0
    while steps < max_steps and not success:
        observation = Observation([env.image()], env.prompt, env.state(obs), embodiment, dataset)
        chunk = policy.predict([observation], generator=generator)[0]
        queries += 1
        for action in chunk[:execute]:
            obs, success, truncated = env.step(action)
            steps += 1
            if success or truncated or steps >= max_steps:
                break
        if truncated:
            break
    return EpisodeResult(env.task, env.seed, env.variation, success, steps, queries)


def evaluate_task(
    policy: Evo1Policy,
    task: str,
    episodes: int,
    seed: int = EVAL_SEED,
    max_steps: int = MAX_STEPS,
    execute: int = EXECUTE,
    embodiment: str | None = None,
    dataset: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EpisodeResult]:
    results = []
    for k in range(episodes):
        env = MetaWorldEnv(task, seed + k, episode_variation(seed + k), policy.config.image_size)
        try:
            results.append(run_episode(policy, env, max_steps, execute, embodiment, dataset))
        finally:
            env.close()
        if progress:
            progress(k + 1, episodes)
    return results
