"""The registry of benchmark suites: every `evo1 bench <name>` is a line in `SUITES`, naming its module.

A suite's module gives `suite(name) -> Suite`: the suite's protocol (a `BenchProtocol`, its defaults),
how it reads a task list, its episodes and task levels, and how `evo1 bench <name>` presents it
(`Command`: help, examples and the suite's own options; commands/bench.py builds the command from it).
A recipe's `evaluation:` section names a suite, its tasks and changes to its protocol the same way.
Adding a suite is writing its module and adding its line here. LIBERO's four suites are suites here too
(`libero` runs all four), one module for the five names; a LIBERO task's level is its suite.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evo1cli.bench.harness import BenchProtocol, EpisodeFactory
from evo1cli.errors import Evo1Error

SUITES = {
    "metaworld": "evo1cli.bench.metaworld",
    "libero": "evo1cli.bench.libero",
    "libero-spatial": "evo1cli.bench.libero",
    "libero-object": "evo1cli.bench.libero",
    "libero-goal": "evo1cli.bench.libero",
    "libero-long": "evo1cli.bench.libero",
}

SETTINGS = ("episodes", "seed", "action_steps", "max_steps")
"""The protocol fields a run may change (besides the suite's options); the others belong to the run."""


@dataclass(frozen=True)
class Option:
    """One of a suite's own `evo1 bench` options: `--name` (underscores as dashes), placed after `after`."""

    name: str  # the parameter: a protocol option, or what the suite's `plan` reads (e.g. Meta-World's level)
    default: Any
    help: str
    type: Any
    after: str  # the option it follows in the help: tasks, max_steps or videos


@dataclass(frozen=True)
class Command:
    """How `evo1 bench <suite>` presents a suite beyond the options every suite has."""

    doc: str  # the command's help: one line, then the details and examples
    tasks: tuple[str, str]  # --tasks: its default and its help
    options: tuple[Option, ...] = ()
    help: dict[str, str] = field(default_factory=dict)  # a common option's help, where this suite words it its way
    expert: bool = False  # --policy expert runs the environments' scripted experts (and --checkpoint is optional)


Plan = Callable[[str, dict[str, Any]], tuple[list[str], BenchProtocol]]
"""(task list as `--tasks` takes it, settings by name) -> the task names in order and the protocol to run.
An error names the setting as its `evo1 bench` flag (`--variations`)."""


def _no_preparation(protocol: BenchProtocol) -> None:
    return None


@dataclass(frozen=True)
class Suite:
    name: str
    protocol: BenchProtocol  # the defaults
    plan: Plan
    episodes: EpisodeFactory  # (task, protocol) -> each episode's ready environment (runs in the workers)
    levels: Callable[[BenchProtocol], dict[str, str]]  # task -> its level in the report
    command: Command
    prepare: Callable[[BenchProtocol], None] = _no_preparation  # once, in the main process, before the workers


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise Evo1Error(f"unknown suite {name!r} (one of {', '.join(SUITES)})", field="suite")
    suite: Suite = importlib.import_module(SUITES[name]).suite(name)
    return suite


def flag(name: str) -> str:
    """A setting's `evo1 bench` flag: `action_steps` -> `--action-steps`."""
    return "--" + name.replace("_", "-")


def apply(protocol: BenchProtocol, settings: dict[str, Any], options: tuple[str, ...] = ()) -> BenchProtocol:
    """`protocol` with `settings` changed: the fields in SETTINGS and the suite's `options` named, each of its type."""
    for key, value in settings.items():
        if key not in (*SETTINGS, *options):
            known = ", ".join((*SETTINGS, *options))
            raise Evo1Error(f"not a setting of {protocol.suite} (one of {known})", field=flag(key))
        _check_value(key, value, getattr(protocol, key))
    return protocol.replace(**settings)


KINDS = {bool: "true or false", int: "an integer", str: "a string", float: "a number"}
POSITIVE = ("episodes", "action_steps", "max_steps")


def _check_value(key: str, value: Any, default: Any) -> None:
    """`value` has the type of the setting's `default` (an integer where that is None: LIBERO's max_steps)."""
    if value is None and default is None:
        return
    kind = int if key in SETTINGS or default is None else type(default)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise Evo1Error(f"must be {KINDS.get(kind, kind.__name__)}, got {value!r}", field=flag(key))
    if key in POSITIVE and value < 1:
        raise Evo1Error(f"must be >= 1, got {value}", field=flag(key))
