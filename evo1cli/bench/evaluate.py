"""`evo1 bench`'s core: run a suite's episodes through the harness, then summarise them.

Summary: per task (success rate, mean steps), per level and overall. For Meta-World both the authors'
headline (the mean of the four difficulty-group rates) and the plain mean over tasks; for LIBERO a task's
level is its suite.

Under `accelerate launch` (or torchrun) with N processes, process r runs tasks r, r + N, ... with its own
workers and device, and every process gets all records back; the main process writes the one report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from evo1cli import __version__
from evo1cli.bench.harness import BenchProtocol, EpisodeFactory, EpisodeRecord, run_benchmark
from evo1cli.bench.suites import get_suite
from evo1cli.client.chunks import Policy


def suite_factory(suite: str, protocol: BenchProtocol) -> tuple[EpisodeFactory, dict[str, str]]:
    """The suite's episode factory (its shared files prepared) and its task -> level map."""
    found = get_suite(suite)
    found.prepare(protocol)
    return found.episodes, found.levels(protocol)


def process_group() -> Any:
    """accelerate's `PartialState` when this is one of several launched processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def share(tasks: list[str], group: Any) -> list[str]:
    """This process's tasks: r, r + N, ... of N launched processes (all of them without a group)."""
    return tasks if group is None else tasks[group.process_index :: group.num_processes]


def evaluate(
    suite: str,
    tasks: list[str],
    protocol: BenchProtocol,
    policy: Policy | None,
    workers: int = 1,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    group: Any = None,
) -> tuple[list[EpisodeRecord], dict[str, str], float]:
    """Every episode of `tasks` (this process's share of them under `group`), sorted by task and episode."""
    factory, levels = suite_factory(suite, protocol)
    start = time.perf_counter()
    mine = share(tasks, group)
    records = run_benchmark(mine, factory, protocol, policy, workers, on_episode)
    seconds = time.perf_counter() - start
    if group is not None:
        from accelerate.utils import gather_object

        for record in records:
            record.extra["process"] = group.process_index
        records = gather_object(records)
        seconds = max(gather_object([seconds]))
    order = {t: i for i, t in enumerate(tasks)}
    records.sort(key=lambda r: (order[r.task], r.episode))
    return records, levels, seconds


def summarize(records: list[EpisodeRecord], levels: dict[str, str]) -> dict[str, Any]:
    per_task: dict[str, dict[str, Any]] = {}
    for r in records:
        t = per_task.setdefault(r.task, {"level": levels.get(r.task), "episodes": 0, "successes": 0, "steps": 0})
        t["episodes"] += 1
        t["successes"] += int(r.success)
        t["steps"] += r.steps
    for t in per_task.values():
        t["success_rate"] = t["successes"] / t["episodes"]
        t["mean_steps"] = t.pop("steps") / t["episodes"]
    per_level: dict[str, dict[str, Any]] = {}
    for t in per_task.values():
        if t["level"] is not None:
            group = per_level.setdefault(t["level"], {"tasks": 0, "rates": []})
            group["tasks"] += 1
            group["rates"].append(t["success_rate"])
    levels_out = {
        k: {"tasks": v["tasks"], "success_rate": sum(v["rates"]) / len(v["rates"])} for k, v in per_level.items()
    }
    overall: dict[str, Any] = {
        "episodes": len(records),
        "successes": sum(r.success for r in records),
        "mean_over_tasks": sum(t["success_rate"] for t in per_task.values()) / max(len(per_task), 1),
    }
    if levels_out:
        overall["mean_over_levels"] = sum(v["success_rate"] for v in levels_out.values()) / len(levels_out)
    return {"tasks": per_task, "levels": levels_out, "overall": overall}


def eval_info(
    suite: str,
    protocol: BenchProtocol,
    policy_name: str,
    records: list[EpisodeRecord],
    levels: dict[str, str],
    seconds: float,
) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(protocol).items() if k not in ("video_dir", "options")}
    settings.update(protocol.options)
    return {
        "suite": suite,
        "policy": policy_name,
        "protocol": settings,
        **summarize(records, levels),
        "episodes": [asdict(r) for r in records],
        "seconds": seconds,
        "evo1cli": __version__,
    }
