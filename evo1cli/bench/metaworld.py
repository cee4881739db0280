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

from evo1cli.bench.harness import BenchProtocol
from evo1cli.bench.suites import Command, Option, Suite, apply
from evo1cli.errors import Evo1Error

if TYPE_CHECKING:  # the simulator loads in the workers, not when the command line starts
    from evo1cli.sim.metaworld import MetaWorldEnv

PROTOCOL = BenchProtocol(
    "metaworld", episodes=10, seed=4042, action_steps=15, max_steps=400,
    options={"variations": "authors", "fast_render": False},
)  # fmt: skip
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


def plan(tasks: str, settings: dict[str, Any]) -> tuple[list[str], BenchProtocol]:
    """The tasks (`mt10`, `mt50`, a group or names; only `level`'s with one) and the protocol `settings` ask for;
    `prompt` asks every task that instruction instead of its own."""
    from evo1cli.sim.metaworld_tasks import DIFFICULTY_GROUPS, resolve_tasks

    settings = dict(settings)
    level, prompt = settings.pop("level", None), settings.pop("prompt", None)
    names = resolve_tasks(tasks)
    if level is not None:
        if level not in DIFFICULTY_GROUPS:
            raise Evo1Error(f"must be one of {', '.join(DIFFICULTY_GROUPS)}, got {level!r}", field="--level")
        names = [t for t in names if t in DIFFICULTY_GROUPS[level]]
    protocol = apply(PROTOCOL, settings, ("variations", "fast_render"))
    if protocol.variations not in VARIATIONS:
        raise Evo1Error(f"must be one of {', '.join(VARIATIONS)}, got {protocol.variations!r}", field="--variations")
    if prompt is not None:
        if not prompt.strip():
            raise Evo1Error("must not be empty", field="--prompt")
        protocol = protocol.replace(prompts=dict.fromkeys(names, prompt))
    return names, protocol


def prepare(protocol: BenchProtocol) -> None:
    """Once, in the main process: build (or load) the MT50 variations the workers will read."""
    from evo1cli.sim.metaworld import mt50_variations

    if protocol.options.get("variations", PROTOCOL.variations) == "authors":
        mt50_variations(protocol.seed)


def episodes(task: str, protocol: BenchProtocol) -> Iterator[tuple[int, int, MetaWorldBenchEnv, dict[str, Any]]]:
    """Each episode's ready environment, per the protocol's `variations` (see the module docstring)."""
    from evo1cli.sim.metaworld import MetaWorldEnv, episode_variation, mt50_variations

    scheme = protocol.options.get("variations", PROTOCOL.variations)
    max_steps = protocol.max_steps or PROTOCOL.max_steps or 0
    fast = bool(protocol.options.get("fast_render", PROTOCOL.fast_render))
    prompt = (protocol.options.get("prompts") or {}).get(task)
    if scheme == "authors":
        variations = mt50_variations(protocol.seed)[task]
        env = MetaWorldEnv(task, protocol.seed, 0, protocol.image_size, variations=variations, fast_render=fast)
        bench_env = MetaWorldBenchEnv(env, max_steps, prompt)
        try:
            for k in range(protocol.episodes):
                variation = env.draw_variation()
                bench_env.start(protocol.seed + k)
                yield k, protocol.seed + k, bench_env, {"variation": variation}
        finally:
            env.close()
    else:
        for k in range(protocol.episodes):
            seed = protocol.seed + k
            env = MetaWorldEnv(task, seed, episode_variation(seed), protocol.image_size, fast_render=fast)
            bench_env = MetaWorldBenchEnv(env, max_steps, prompt)
            try:
                bench_env.start(None)
                yield k, seed, bench_env, {"variation": env.variation}
            finally:
                env.close()


def levels(protocol: BenchProtocol) -> dict[str, str]:
    from evo1cli.sim.metaworld_tasks import DIFFICULTY_GROUPS

    return {task: level for level, tasks in DIFFICULTY_GROUPS.items() for task in tasks}


COMMAND = Command(
    doc="""Meta-World MT50 with the authors' protocol: success per task, per level and overall, videos, a report.

    Examples:

      evo1 bench metaworld --checkpoint runs/metaworld/stage2/checkpoints/last --workers 2

      evo1 bench metaworld --policy expert --tasks mt10 --episodes 3

      evo1 bench metaworld -c runs/quickstart/stage2/checkpoints/last --tasks button-press-topdown-v3 --episodes 20

      evo1 bench metaworld -c runs/mt10/stage2/checkpoints/last --tasks drawer-open-v3 \
        --prompt "Push and close a drawer"
    """,
    tasks=("mt50", "mt10, mt50, or a comma list of task names."),
    options=(
        Option("level", None, "Only one difficulty: easy, medium, hard, very_hard.", str | None, after="tasks"),
        Option("variations", PROTOCOL.variations, "authors (MT50 seed draws) or per-seed.", str, after="max_steps"),
        Option(
            "fast_render",
            PROTOCOL.fast_render,
            "Shadows and reflections off (faster; match how the training data was rendered).",
            bool,
            after="videos",
        ),
        Option(
            "prompt",
            None,
            "Ask this instruction instead of each task's own (does the policy follow the words?).",
            str | None,
            after="videos",
        ),
    ),
    expert=True,
)


def suite(name: str) -> Suite:
    return Suite(name, PROTOCOL, plan, episodes, levels, COMMAND, prepare)
