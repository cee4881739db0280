"""The offline main job: collect a Meta-World dataset, train the tiny model, evaluate it in closed loop.

Two suites (`SUITES`):
    single  one task, button-press-topdown-v3: 40 demonstrations, `recipes/quickstart.yaml`, 20 episodes
            on per-seed variations from seed 4042
    mt10    the ten MT10 tasks in one language-conditioned policy: 15 demonstrations per task,
            `recipes/mt10-tiny.yaml`, the authors' protocol (10 episodes per task on `MT50(4042)`'s variations,
            400 steps, 15 actions per chunk), then the same-scene pairs (drawer-open/close,
            window-open/close) asked each other's instruction

    1. collect   scripted-expert demonstrations, per task (appends until each task has enough)
    2. train     both stages of the suite's recipe (resumes a run that was interrupted)
    3. evaluate  rollouts of the final checkpoint on seeds never used for collection
    4. swap      (mt10) the swapped-instruction episodes: does the policy follow the words or the scene?

Every phase is resumable: running it again skips what is done (evaluation is rerun).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evo1cli.bench.evaluate import eval_info, evaluate
from evo1cli.bench.harness import EpisodeRecord
from evo1cli.bench.metaworld import PROTOCOL
from evo1cli.bench.report import write_report
from evo1cli.collect.metaworld import collect
from evo1cli.data.format import load_meta
from evo1cli.errors import Evo1Error
from evo1cli.runtime.device import choose_placement
from evo1cli.runtime.policy import LocalPolicy
from evo1cli.sim.metaworld_tasks import MT10, PROMPTS
from evo1cli.train.recipe import load_recipe
from evo1cli.train.trainer import Listener, train

TASK = "button-press-topdown-v3"
SAME_SCENE = {
    "drawer-open-v3": "drawer-close-v3",
    "drawer-close-v3": "drawer-open-v3",
    "window-open-v3": "window-close-v3",
    "window-close-v3": "window-open-v3",
}
"""MT10's pairs that share a scene and differ in the instruction: each task -> its partner."""


@dataclass(frozen=True)
class Suite:
    """What `evo1 quickstart --suite NAME` runs unless told otherwise."""

    tasks: tuple[str, ...]
    recipe: str  # file name in recipes/
    out: Path
    data: Path
    episodes: int  # demonstrations per task
    eval_episodes: int  # per task
    variations: str  # the bench's variation scheme: "per-seed" or "authors"
    swaps: dict[str, str] = field(default_factory=dict)  # task -> the task whose instruction the swap check asks


SUITES = {
    "single": Suite((TASK,), "quickstart.yaml", Path("runs/quickstart"), Path("data/quickstart"), 40, 20, "per-seed"),
    "mt10": Suite(MT10, "mt10-tiny.yaml", Path("runs/mt10"), Path("data/mt10"), 15, 10, "authors", SAME_SCENE),
}


@dataclass
class QuickstartReport:
    suite: str
    tasks: list[str]
    dataset: Path
    episodes: int
    frames: int
    checkpoint: Path
    success_rate: float  # mean over tasks
    results: list[EpisodeRecord]
    info: dict[str, Any]  # the evaluation's eval_info.json (per task, per level, overall), as `evo1 bench` writes it
    files: dict[str, Path]  # its report files (OUT/evaluate/eval_info.json, success.png, report.html)
    swapped: list[EpisodeRecord] = field(default_factory=list)  # the swap check's episodes (OUT/swap/)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU time per phase, all processes


def suite(name: str) -> Suite:
    if name not in SUITES:
        raise Evo1Error(f"must be one of {', '.join(SUITES)}, got {name!r}", field="--suite")
    return SUITES[name]


def default_recipe(name: str) -> Path:
    """The suite's recipe: `recipes/<file>` here if it exists, else the copy in this checkout."""
    local = Path("recipes") / suite(name).recipe
    if local.is_file():
        return local
    bundled = Path(__file__).resolve().parent.parent / "recipes" / suite(name).recipe
    return bundled if bundled.is_file() else local


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (workers, simulators)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def episodes_per_task(data: Path) -> dict[str, int]:
    """How many demonstrations of each task `data` holds (none if it does not exist yet)."""
    if not (data / "meta" / "info.json").is_file():
        return {}
    counts: dict[str, int] = {}
    for episode in load_meta(data).episodes:
        task = str(episode.extra.get("task"))
        counts[task] = counts.get(task, 0) + 1
    return counts


def collect_suite(
    data: Path, tasks: list[str], episodes: int, image_size: int, progress: Callable[[str, int, int], None] | None
) -> None:
    """Append scripted-expert demonstrations until each task has `episodes` of them in `data`."""
    have = episodes_per_task(data)
    done = sum(min(have.get(t, 0), episodes) for t in tasks)
    total = len(tasks) * episodes

    def collected(kept: int, _: int) -> None:
        if progress is not None:
            progress("collect", done + kept, total)

    for task in tasks:
        missing = episodes - have.get(task, 0)
        if missing > 0:
            collect(data, [task], missing, image_size=image_size, fast_render=True, progress=collected)
            done += missing


def quickstart(
    recipe_path: Path,
    out: Path,
    data: Path,
    episodes: int = 40,
    eval_episodes: int = 20,
    suite_name: str = "single",
    overrides: list[str] | None = None,
    listener: Listener | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 2,
    videos: int = 0,
    swap: bool = True,
) -> QuickstartReport:
    """Collect `episodes` demonstrations per task, train, evaluate `eval_episodes` per task (and the swaps)."""
    plan = suite(suite_name)
    tasks = list(plan.tasks)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    recipe = load_recipe(recipe_path, [*(overrides or []), f"output={out}"], check_paths=False)
    if len(recipe.data.groups) != 1:
        raise Evo1Error("the quickstart trains on exactly one dataset", path=recipe_path, field="data.groups")
    group = recipe.data.groups[0]
    key = f"data.groups.{group.embodiment}.{group.dataset}.path"
    recipe = load_recipe(recipe_path, [*(overrides or []), f"output={out}", f"{key}={data}"], check_paths=False)

    @contextlib.contextmanager
    def timed(phase: str) -> Iterator[None]:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        yield
        seconds[phase] = time.perf_counter() - start
        cpu[phase] = _cpu_seconds() - cpu_start

    with timed("collect"):
        collect_suite(data, tasks, episodes, recipe.model.image_size, progress)
        meta = load_meta(data)

    with timed("train"):
        results = train(recipe, (1, 2), resume=True, listener=listener)
        checkpoint = results[-1].checkpoint
    if results[-1].interrupted:
        raise KeyboardInterrupt

    # float32, as it was trained here (the CPU's bf16 would change the figures the docs quote)
    policy = LocalPolicy.load(checkpoint, choose_placement("auto", "float32"), group.embodiment, group.dataset)

    def run(phase: str, names: list[str], prompts: dict[str, str] | None) -> tuple[list[EpisodeRecord], dict, dict]:
        video_dir = str(out / phase / "videos") if videos else None
        spec = PROTOCOL.replace(
            episodes=eval_episodes, image_size=policy.image_size, videos=videos, video_dir=video_dir,
            variations=plan.variations, fast_render=True, **({"prompts": prompts} if prompts else {}),
        )  # fmt: skip
        counter = [0]

        def on_episode(record: EpisodeRecord) -> None:
            counter[0] += 1
            if progress is not None:
                progress(phase, counter[0], len(names) * eval_episodes)

        records, levels, took = evaluate("metaworld", names, spec, policy, min(workers, len(names)), on_episode)
        info = eval_info("metaworld", spec, str(checkpoint), records, levels, took)
        return records, info, write_report(info, out / phase)

    with timed("evaluate"):
        rollouts, info, files = run("evaluate", tasks, None)

    swapped: list[EpisodeRecord] = []
    if swap and plan.swaps:
        with timed("swap"):
            swapped, _, _ = run("swap", list(plan.swaps), {t: PROMPTS[other] for t, other in plan.swaps.items()})
    return QuickstartReport(
        suite=suite_name,
        tasks=tasks,
        dataset=data,
        episodes=len(meta.episodes),
        frames=sum(e.length for e in meta.episodes),
        checkpoint=checkpoint,
        success_rate=info["overall"]["mean_over_tasks"],
        results=rollouts,
        info=info,
        files=files,
        swapped=swapped,
        seconds=seconds,
        cpu_seconds=cpu,
    )


def swap_table(report: QuickstartReport) -> dict[str, dict[str, Any]]:
    """Per swapped task: how often the scene's own task got done with its own instruction and with the other's.

    A policy that follows the words does the scene's task far less often when asked the partner's
    instruction; one that reads only the scene does it as often either way.
    """
    plan = suite(report.suite)
    table: dict[str, dict[str, Any]] = {}
    for task, other in plan.swaps.items():
        own = [r for r in report.results if r.task == task]
        asked = [r for r in report.swapped if r.task == task]
        if not asked:
            continue
        table[task] = {
            "asked": PROMPTS[other],
            "episodes": len(asked),
            "scene_task_done": sum(r.success for r in asked),  # with the partner's instruction
            "own_instruction_solved": sum(r.success for r in own),  # of len(own), from the evaluation
            "own_instruction_episodes": len(own),
        }
    return table


def report_dict(report: QuickstartReport) -> dict[str, Any]:
    return {
        "suite": report.suite,
        "tasks": report.tasks,
        "dataset": str(report.dataset),
        "episodes": report.episodes,
        "frames": report.frames,
        "checkpoint": str(report.checkpoint),
        "success_rate": report.success_rate,
        "successes": sum(r.success for r in report.results),
        "eval_episodes": len(report.results),
        "summary": {k: report.info[k] for k in ("tasks", "levels", "overall")},
        "report": str(report.files["html"]),
        "swap": swap_table(report),
        "seconds": {k: round(v, 1) for k, v in report.seconds.items()},
        "cpu_seconds": {k: round(v, 1) for k, v in report.cpu_seconds.items()},
        "episodes_detail": [asdict(r) for r in report.results],
        "swap_detail": [asdict(r) for r in report.swapped],
    }
