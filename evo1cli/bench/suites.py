"""The registry of benchmark suites: each is one module with a `SUITE` (its protocol and its episodes).

    SUITE = Suite("metaworld", BenchProtocol(episodes=10, seed=4042, ...), episodes, levels, prepare)

`evo1 bench <suite>` reads its option defaults from `SUITE.protocol`; `evaluate` finds the episodes and
the task levels here. Adding a suite is writing its module and naming it in `SUITES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evo1cli.bench.harness import EpisodeFactory, RunSpec
from evo1cli.errors import Evo1Error

SUITES = {"metaworld": "evo1cli.bench.metaworld", "libero": "evo1cli.bench.libero"}


@dataclass(frozen=True)
class BenchProtocol:
    """A suite's evaluation protocol: what `evo1 bench` runs unless told otherwise."""

    episodes: int  # per task
    seed: int  # episode k uses seed + k
    action_steps: int  # actions executed per chunk
    max_steps: int | None  # steps per episode at most; None: each task's own budget
    settle_steps: int = 0  # still steps after a reset, not counted
    variations: str | None = None  # how object and goal positions are drawn (Meta-World)
    render: str = "default"  # default, or fast (shadows and reflections off)


def _no_preparation(spec: RunSpec) -> None:
    return None


@dataclass(frozen=True)
class Suite:
    name: str
    protocol: BenchProtocol
    episodes: EpisodeFactory  # (task, spec) -> each episode's ready environment (runs in the workers)
    levels: Callable[[RunSpec], dict[str, str]]  # task -> its level in the report
    prepare: Callable[[RunSpec], None] = _no_preparation  # once, in the main process, before the workers


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise Evo1Error(f"unknown suite {name!r} (one of {', '.join(SUITES)})", field="suite")
    suite: Any = importlib.import_module(SUITES[name]).SUITE
    return suite
