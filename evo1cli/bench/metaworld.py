"""Meta-World through the benchmark harness, with the authors' MT50 protocol by default.

Per query the policy sees the corner2 image (rendered at 480, turned 180 degrees, centre 2/3, resized to
the policy's size), state = the first 8 observation entries and the task's prompt; the first 15 actions
of each chunk are applied (clipped to [-1, 1]) and an episode ends on success or after 400 steps.

Variations (where the objects and goals are):
- `authors` (default): as `gym.make_vec("Meta-World/MT50", seed=4042)` in the authors' client: the
  task's 50 variations of `MT50(4042)`, `env.seed(4042)`, and per episode k a variation drawn by the
  env's `np_random`, then `reset(seed=4042 + k)`.
- `per-seed`: episode k uses `MT1(task, seed + k)` and a variation drawn from that seed, as
  `evo1 collect` does (so evaluation seeds 4042 + k never meet collection's 0 + k).
Rendering: Meta-World's default (shadows and reflections on), as the authors rendered; `fast_render`
turns both off (about 2.7x faster renders, different pixels: use it for collection and evaluation alike).
After each reset one zero action is applied, as in the authors' client.
`prompts` (task -> instruction) replaces a task's own instruction: what a swapped-instruction check asks.
The policy's noise is seeded by the episode's seed, so a rerun repeats every episode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from evo1cli.bench.harness import RunSpec
from evo1cli.bench.suites import BenchProtocol, Suite

if TYPE_CHECKING:  # the simulator loads in the workers, not when the command line starts
    from evo1cli.sim.metaworld import MetaWorldEnv

PROTOCOL = BenchProtocol(episodes=10, seed=4042, action_steps=15, max_steps=400, variations="authors")
VARIATIONS = ("authors", "per-seed")


class MetaWorldBenchEnv:
    """`MetaWorldEnv` as the harness drives it."""

    def __init__(self, env: MetaWorldEnv, max_steps: int, prompt: str | None = None):
        from evo1cli.sim.metaworld import MAX_PATH_LENGTH, ScriptedExpert

        self.env = env
        self.task, self.prompt, self.max_steps = env.task, prompt or env.prompt, min(max_steps, MAX_PATH_LENGTH)
        self.expert = ScriptedExpert(env.task)
        self.obs = np.zeros(39)

    def start(self, seed: int | None) -> None:
        """Reset, then one zero-action step, as the authors' client does (not counted against the budget)."""
        self.env.reset(seed)
        self.obs, _, _ = self.env.step(np.zeros(4))
        self.env.steps = 0

    def observation(self) -> tuple[list[np.ndarray], np.ndarray]:
        return [self.env.image()], self.env.state(self.obs)

    def step(self, action: np.ndarray) -> tuple[bool, bool]:
        self.obs, success, truncated = self.env.step(action)
        return success, success or truncated

    def frame(self) -> np.ndarray:
        return self.env.image()

    def expert_action(self) -> np.ndarray:
        return self.expert(self.obs)


def prepare(spec: RunSpec) -> None:
    """Once, in the main process: build (or load) the MT50 variations the workers will read."""
    from evo1cli.sim.metaworld import mt50_variations

    if spec.options.get("variations", PROTOCOL.variations) == "authors":
        mt50_variations(spec.seed)


def episodes(task: str, spec: RunSpec) -> Iterator[tuple[int, int, MetaWorldBenchEnv, dict[str, Any]]]:
    """Each episode's ready environment, per `spec.options["variations"]` (see the module docstring)."""
    from evo1cli.sim.metaworld import MetaWorldEnv, episode_variation, mt50_variations

    scheme = spec.options.get("variations", PROTOCOL.variations)
    max_steps = spec.max_steps or PROTOCOL.max_steps or 0
    fast = bool(spec.options.get("fast_render", False))
    prompt = (spec.options.get("prompts") or {}).get(task)
    if scheme == "authors":
        variations = mt50_variations(spec.seed)[task]
        env = MetaWorldEnv(task, spec.seed, 0, spec.image_size, variations=variations, fast_render=fast)
        bench_env = MetaWorldBenchEnv(env, max_steps, prompt)
        try:
            for k in range(spec.episodes):
                variation = env.draw_variation()
                bench_env.start(spec.seed + k)
                yield k, spec.seed + k, bench_env, {"variation": variation}
        finally:
            env.close()
    else:
        for k in range(spec.episodes):
            seed = spec.seed + k
            env = MetaWorldEnv(task, seed, episode_variation(seed), spec.image_size, fast_render=fast)
            bench_env = MetaWorldBenchEnv(env, max_steps, prompt)
            try:
                bench_env.start(None)
                yield k, seed, bench_env, {"variation": env.variation}
            finally:
                env.close()


def levels(spec: RunSpec) -> dict[str, str]:
    from evo1cli.sim.metaworld_tasks import DIFFICULTY_GROUPS

    return {task: level for level, tasks in DIFFICULTY_GROUPS.items() for task in tasks}


SUITE = Suite("metaworld", PROTOCOL, episodes, levels, prepare)
