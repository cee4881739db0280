"""LIBERO through the benchmark harness, with the standard protocol as the Evo-1 authors ran it.

Per query the policy sees the agentview and wrist images (rendered at the policy's size, turned 180
degrees), the 8-d state and the task's instruction; 14 actions of each chunk are applied with the gripper
binarised; an episode ends on success or at the suite's step budget (220 / 280 / 300 / 520), after 10
settle steps that do not count. Episode k of a task starts from the task's init state k (of 50), and its
policy noise is seeded by seed + k, so a rerun repeats every episode. See `evo1cli.sim.libero`.

Tasks are named by their LIBERO names (unique across the four suites); a task's "level" in the report is
its suite, so `mean_over_levels` over `evo1 bench libero` is the paper's mean of the four suite rates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evo1cli.bench.harness import BenchProtocol
from evo1cli.bench.suites import Command, Option, Suite, apply
from evo1cli.errors import Evo1Error
from evo1cli.sim.libero import SETTLE_STEPS, SUITES, LiberoEnv, suite_tasks

# seed 7: the standard LIBERO evaluation seed; max_steps None: each suite's own budget (220/280/300/520)
PROTOCOL = BenchProtocol(
    "libero", episodes=50, seed=7, action_steps=14, max_steps=None,
    options={"suites": list(SUITES), "settle_steps": SETTLE_STEPS, "gripper": "> 0.5 -> -1 (open), else +1"},
)  # fmt: skip


def suite_names(suite: str) -> list[str]:
    """`libero` -> all four suites; `libero-long` etc. -> itself."""
    if suite == "libero":
        return list(SUITES)
    if suite not in SUITES:
        raise Evo1Error(f"unknown suite {suite!r} (libero or one of {', '.join(SUITES)})", field="suite")
    return [suite]


def task_table(suites: list[str]) -> dict[str, tuple[str, int]]:
    """task name -> (suite, task_id), in suite order."""
    return {name: (suite, i) for suite in suites for i, name in enumerate(suite_tasks(suite))}


def resolve_tasks(suites: list[str], spec: str) -> list[str]:
    """`all`, or a comma list of task names and task indices (an index picks that task of every suite)."""
    table = task_table(suites)
    if spec.strip() == "all":
        return list(table)
    out: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if item.isdigit():
            matches = [name for name, (_, i) in table.items() if i == int(item)]
            if not matches:
                raise Evo1Error(f"task index {item} is not in 0..{len(table) // len(suites) - 1}", field="--tasks")
        elif item in table:
            matches = [item]
        else:
            raise Evo1Error(f"unknown task {item!r} in {', '.join(suites)} (names or indices)", field="--tasks")
        out += [m for m in matches if m not in out]
    if not out:
        raise Evo1Error("no tasks selected", field="--tasks")
    return out


def levels(suites: list[str]) -> dict[str, str]:
    return {name: suite for name, (suite, _) in task_table(suites).items()}


def protocol_levels(protocol: BenchProtocol) -> dict[str, str]:
    return levels(protocol.suites)


def episodes(task: str, protocol: BenchProtocol) -> Iterator[tuple[int, int, LiberoEnv, dict[str, Any]]]:
    """One environment per task, reset to init state k for episode k."""
    suite, task_id = task_table(protocol.suites)[task]
    env = LiberoEnv(suite, task_id, 0, protocol.image_size, seed=protocol.seed, settle_steps=protocol.settle_steps)
    if protocol.max_steps is not None:
        env.max_steps = protocol.max_steps
    try:
        for k in range(protocol.episodes):
            env.reset(episode=k)
            yield k, protocol.seed + k, env, {"suite": suite, "init_state": k % len(env.init_states)}
    finally:
        env.close()


def command(name: str) -> Command:
    which = "All four LIBERO suites" if name == "libero" else f"LIBERO-{name.split('-')[1].capitalize()}"
    return Command(
        doc=f"""{which} with the standard protocol (needs the `libero` extra): success per task and suite.

    Two views, 8-d state, 14 actions per chunk, binarised gripper, 10 settle steps, budgets 220/280/300/520.

    Examples:

      evo1 bench {name} --checkpoint runs/libero/stage2/checkpoints/last --workers 4

      evo1 bench {name} -c CKPT --tasks 0,1 --episodes 5 --videos 2
    """,
        tasks=("all", "all, or a comma list of task names or indices (0-9)."),
        options=(
            Option("settle_steps", PROTOCOL.settle_steps, "Still steps after reset (not counted).", int, "max_steps"),
        ),
        help={
            "episodes": "Episodes per task (init states 0..N-1).",
            "seed": "Env seed; episode k's policy noise uses seed + k.",
            "max_steps": "Step budget (default 220/280/300/520).",
        },
    )


def suite(name: str) -> Suite:
    """`libero` (all four suites) or one of them."""
    suites = suite_names(name)
    protocol = PROTOCOL.replace(suite=name, suites=suites)

    def plan(tasks: str, settings: dict[str, Any]) -> tuple[list[str], BenchProtocol]:
        chosen = apply(protocol, settings, ("settle_steps",))
        if chosen.settle_steps < 0:
            raise Evo1Error(f"must be >= 0, got {chosen.settle_steps}", field="--settle-steps")
        return resolve_tasks(suites, tasks), chosen

    return Suite(name, protocol, plan, episodes, protocol_levels, command(name))
