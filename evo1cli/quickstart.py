"""The offline main job: collect a small Meta-World dataset, train the tiny model, evaluate it in closed loop.

    1. collect   `episodes` scripted-expert demonstrations of one task (appends until there are enough)
    2. train     both stages of the quickstart recipe (resumes a run that was interrupted)
    3. evaluate  `eval_episodes` rollouts of the final checkpoint on unseen seeds; the success rate

Every phase is resumable: running it again skips what is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evo1cli.bench.evaluate import evaluate
from evo1cli.bench.harness import EpisodeRecord, RunSpec
from evo1cli.bench.metaworld import PROTOCOL
from evo1cli.collect.metaworld import collect
from evo1cli.data.format import load_meta
from evo1cli.errors import Evo1Error
from evo1cli.runtime.device import choose_placement
from evo1cli.runtime.policy import LocalPolicy
from evo1cli.train.recipe import load_recipe
from evo1cli.train.trainer import Listener, train

TASK = "button-press-topdown-v3"


@dataclass
class QuickstartReport:
    task: str
    dataset: Path
    episodes: int
    frames: int
    checkpoint: Path
    success_rate: float
    results: list[EpisodeRecord]
    seconds: dict[str, float] = field(default_factory=dict)  # per phase


def quickstart(
    recipe_path: Path,
    out: Path,
    data: Path,
    episodes: int = 40,
    eval_episodes: int = 20,
    task: str = TASK,
    overrides: list[str] | None = None,
    listener: Listener | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuickstartReport:
    seconds: dict[str, float] = {}
    recipe = load_recipe(recipe_path, [*(overrides or []), f"output={out}"], check_paths=False)
    if len(recipe.data.groups) != 1:
        raise Evo1Error("the quickstart trains on exactly one dataset", path=recipe_path, field="data.groups")
    group = recipe.data.groups[0]
    key = f"data.groups.{group.embodiment}.{group.dataset}.path"
    recipe = load_recipe(recipe_path, [*(overrides or []), f"output={out}", f"{key}={data}"], check_paths=False)

    start = time.perf_counter()
    have = len(load_meta(data).episodes) if (data / "meta" / "info.json").is_file() else 0
    if have < episodes:
        collect(
            data,
            [task],
            episodes - have,
            image_size=recipe.model.image_size,
            fast_render=True,
            progress=None if progress is None else lambda done, total: progress("collect", done, total),
        )
    meta = load_meta(data)
    seconds["collect"] = time.perf_counter() - start

    start = time.perf_counter()
    results = train(recipe, (1, 2), resume=True, listener=listener)
    checkpoint = results[-1].checkpoint
    seconds["train"] = time.perf_counter() - start
    if results[-1].interrupted:
        raise KeyboardInterrupt

    start = time.perf_counter()
    # float32, as it was trained here (the CPU's bf16 would change the figures the docs quote)
    policy = LocalPolicy.load(checkpoint, choose_placement("auto", "float32"), group.embodiment, group.dataset)
    # Unseen placements: per-seed variations from 4042 (collection used seeds 0..episodes-1).
    spec = RunSpec("metaworld", eval_episodes, PROTOCOL.seed, PROTOCOL.action_steps, policy.image_size, 0,
                   PROTOCOL.max_steps, None, {"variations": "per-seed", "fast_render": True})  # fmt: skip
    counter = [0]

    def on_episode(record: EpisodeRecord) -> None:
        counter[0] += 1
        if progress is not None:
            progress("evaluate", counter[0], eval_episodes)

    rollouts, _, _ = evaluate("metaworld", [task], spec, policy, 1, on_episode)
    seconds["evaluate"] = time.perf_counter() - start
    return QuickstartReport(
        task=task,
        dataset=data,
        episodes=len(meta.episodes),
        frames=sum(e.length for e in meta.episodes),
        checkpoint=checkpoint,
        success_rate=sum(r.success for r in rollouts) / len(rollouts),
        results=rollouts,
        seconds=seconds,
    )


def report_dict(report: QuickstartReport) -> dict[str, Any]:
    return {
        "task": report.task,
        "dataset": str(report.dataset),
        "episodes": report.episodes,
        "frames": report.frames,
        "checkpoint": str(report.checkpoint),
        "success_rate": report.success_rate,
        "successes": sum(r.success for r in report.results),
        "eval_episodes": len(report.results),
        "seconds": {k: round(v, 1) for k, v in report.seconds.items()},
        "episodes_detail": [asdict(r) for r in report.results],
    }
