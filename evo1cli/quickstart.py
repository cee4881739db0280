"""The offline main job: collect a Meta-World dataset, train the tiny model, evaluate it in closed loop.

A quickstart is a recipe that names its evaluation (`evaluation:`, an `evo1 bench` suite's tasks and
protocol) and its demonstrations (`collect:`); `evo1 quickstart --suite NAME` picks one of `RECIPES`:
    single  recipes/quickstart.yaml: button-press-topdown-v3, 40 demonstrations, 20 episodes on per-seed
            variations from seed 4042
    mt10    recipes/mt10-tiny.yaml: the ten MT10 tasks in one language-conditioned policy, 15 demonstrations
            per task, the authors' protocol (10 episodes per task on `MT50(4042)`'s variations, 400 steps,
            15 actions per chunk), then the same-scene pairs (drawer-open/close, window-open/close) asked
            each other's instruction

    1. collect   scripted-expert demonstrations of the evaluation's tasks (appends until each has enough)
    2. train     both stages of the recipe (resumes a run that was interrupted)
    3. evaluate  rollouts of the final checkpoint on seeds never used for collection
    4. swap      the evaluated tasks whose same-scene partner is evaluated too, asked the partner's instruction:
                 does the policy follow the words or the scene?

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
from evo1cli.bench.harness import BenchProtocol, EpisodeRecord
from evo1cli.bench.report import write_report
from evo1cli.bench.suites import get_suite
from evo1cli.collect.metaworld import collect
from evo1cli.data.format import load_meta
from evo1cli.errors import Evo1Error
from evo1cli.runtime.policy import LocalPolicy, open_checkpoint
from evo1cli.sim.metaworld_tasks import PROMPTS
from evo1cli.train.recipe import Recipe, load_recipe
from evo1cli.train.trainer import Listener, train

RECIPES = {"single": "quickstart.yaml", "mt10": "mt10-tiny.yaml"}
"""`evo1 quickstart --suite NAME` -> its recipe's file name in recipes/."""

SAME_SCENE = {
    "drawer-open-v3": "drawer-close-v3",
    "drawer-close-v3": "drawer-open-v3",
    "window-open-v3": "window-close-v3",
    "window-close-v3": "window-open-v3",
}
"""MT10's pairs that share a scene and differ in the instruction: each task -> its partner."""


@dataclass(frozen=True)
class QuickstartPlan:
    """What a quickstart does, read from its recipe (and the command's options)."""

    recipe: Recipe  # output and dataset path as asked
    data: Path  # the one dataset, collected into
    tasks: list[str]
    demonstrations: int  # per task
    protocol: BenchProtocol  # the evaluation's, with its episodes per task


@dataclass
class QuickstartReport:
    name: str  # the --suite it ran (single, mt10)
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


def default_recipe(name: str, recipes: dict[str, str] = RECIPES, option: str = "--suite") -> Path:
    """`--suite NAME`'s recipe (or another option's, from its `recipes` table): `recipes/<file>` here if it
    exists, else the copy in this checkout."""
    if name not in recipes:
        raise Evo1Error(f"must be one of {', '.join(recipes)}, got {name!r}", field=option)
    local = Path("recipes") / recipes[name]
    if local.is_file():
        return local
    bundled = Path(__file__).resolve().parent.parent / "recipes" / recipes[name]
    return bundled if bundled.is_file() else local


def one_dataset_recipe(
    recipe_path: Path, overrides: list[str], out: Path | None, data: Path | None
) -> tuple[Recipe, Path]:
    """A quickstart's recipe, which trains on exactly one dataset, with `out` and `data` (if given) replacing
    its output and that dataset's path: (recipe, dataset path)."""
    recipe = load_recipe(recipe_path, overrides, check_paths=False)
    if len(recipe.data.groups) != 1:
        raise Evo1Error("the quickstart trains on exactly one dataset", path=recipe_path, field="data.groups")
    group = recipe.data.groups[0]
    out, data = out or recipe.output, data or group.path
    key = f"data.groups.{group.embodiment}.{group.dataset}.path"
    return load_recipe(recipe_path, [*overrides, f"output={out}", f"{key}={data}"], check_paths=False), data


def plan(
    recipe_path: Path,
    overrides: list[str],
    out: Path | None = None,
    data: Path | None = None,
    episodes: int | None = None,
    eval_episodes: int | None = None,
) -> QuickstartPlan:
    """The recipe's plan; `out`, `data`, `episodes` (demonstrations) and `eval_episodes` replace its own."""
    recipe, data = one_dataset_recipe(recipe_path, overrides, out, data)
    tasks, protocol = evaluation_protocol(recipe, eval_episodes)
    if episodes is None:
        if recipe.collect is None:
            raise Evo1Error("missing: demonstrations per task (collect: {episodes: N})", path=recipe_path,
                            field="collect")  # fmt: skip
        episodes = recipe.collect.episodes
    return QuickstartPlan(recipe, data, tasks, episodes, protocol)


def evaluation_protocol(recipe: Recipe, episodes: int | None = None) -> tuple[list[str], BenchProtocol]:
    """The tasks and protocol the recipe's `evaluation:` names (`episodes` per task, if given, replacing its own)."""
    evaluation = recipe.evaluation
    if evaluation is None:
        raise Evo1Error("missing: the suite and tasks to collect and evaluate", path=recipe.source, field="evaluation")
    if evaluation.suite != "metaworld":  # what the scripted experts collect
        raise Evo1Error(f"the quickstart collects Meta-World: must be metaworld, got {evaluation.suite!r}",
                        path=recipe.source, field="evaluation.suite")  # fmt: skip
    suite = get_suite(evaluation.suite)
    settings = {**evaluation.settings, **({} if episodes is None else {"episodes": episodes})}
    try:
        return suite.plan(evaluation.tasks or suite.command.tasks[0], settings)
    except Evo1Error as err:
        name = (err.field or "").lstrip("-").replace("-", "_")
        where = "tasks" if name in ("", "task", "tasks") else name
        raise Evo1Error(err.message, path=recipe.source, field=f"evaluation.{where}") from None


def swaps(tasks: list[str]) -> dict[str, str]:
    """The same-scene pairs among `tasks`: each task -> the partner whose instruction the swap check asks."""
    return {task: other for task, other in SAME_SCENE.items() if task in tasks and other in tasks}


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


def collect_tasks(
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


class PhaseClock:
    """Wall and CPU seconds (all processes) of each phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        yield
        self.seconds[name] = time.perf_counter() - start
        self.cpu_seconds[name] = _cpu_seconds() - cpu_start


def quickstart(
    recipe_path: Path,
    name: str = "single",
    out: Path | None = None,
    data: Path | None = None,
    episodes: int | None = None,
    eval_episodes: int | None = None,
    overrides: list[str] | None = None,
    listener: Listener | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 2,
    videos: int = 0,
    swap: bool = True,
) -> QuickstartReport:
    """Collect, train and evaluate (and the swaps) as the recipe says; `out`, `data`, `episodes`
    (demonstrations per task) and `eval_episodes` (per task) replace the recipe's. `name` is reported."""
    chosen = plan(recipe_path, overrides or [], out, data, episodes, eval_episodes)
    recipe, group, clock = chosen.recipe, chosen.recipe.data.groups[0], PhaseClock()
    with clock.phase("collect"):
        collect_tasks(chosen.data, chosen.tasks, chosen.demonstrations, recipe.model.image_size, progress)
        meta = load_meta(chosen.data)

    with clock.phase("train"):
        results = train(recipe, (1, 2), resume=True, listener=listener)
        checkpoint = results[-1].checkpoint
    if results[-1].interrupted:
        raise KeyboardInterrupt

    # float32, as it was trained here (the CPU's bf16 would change the figures the docs quote)
    policy = open_checkpoint(checkpoint, dtype="float32", embodiment=group.embodiment, dataset=group.dataset)

    def run(phase: str, names: list[str], **changes: Any) -> tuple[list[EpisodeRecord], dict, dict]:
        video_dir = str(recipe.output / phase / "videos") if videos else None
        protocol = chosen.protocol.replace(image_size=policy.image_size, videos=videos, video_dir=video_dir, **changes)
        return run_evaluation(phase, names, protocol, policy, checkpoint, recipe.output, workers, progress)

    with clock.phase("evaluate"):
        rollouts, info, files = run("evaluate", chosen.tasks)
    swapped: list[EpisodeRecord] = []
    pairs = swaps(chosen.tasks)
    if swap and pairs:
        with clock.phase("swap"):
            swapped, _, _ = run("swap", list(pairs), prompts={t: PROMPTS[other] for t, other in pairs.items()})
    return QuickstartReport(
        name=name,
        tasks=chosen.tasks,
        dataset=chosen.data,
        episodes=len(meta.episodes),
        frames=sum(e.length for e in meta.episodes),
        checkpoint=checkpoint,
        success_rate=info["overall"]["mean_over_tasks"],
        results=rollouts,
        info=info,
        files=files,
        swapped=swapped,
        seconds=clock.seconds,
        cpu_seconds=clock.cpu_seconds,
    )


def run_evaluation(
    phase: str,
    names: list[str],
    protocol: BenchProtocol,
    policy: LocalPolicy,
    checkpoint: Path,
    out: Path,
    workers: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[list[EpisodeRecord], dict[str, Any], dict[str, Path]]:
    """`names` run under `protocol` (progress per episode), the report written to OUT/<phase>/:
    (the episodes, eval_info.json's contents, the report's files)."""
    counter = [0]

    def on_episode(record: EpisodeRecord) -> None:
        counter[0] += 1
        if progress is not None:
            progress(phase, counter[0], len(names) * protocol.episodes)

    records, levels, took = evaluate(protocol.suite, names, protocol, policy, min(workers, len(names)), on_episode)
    info = eval_info(protocol.suite, protocol, str(checkpoint), records, levels, took)
    return records, info, write_report(info, out / phase)


def swap_table(report: QuickstartReport) -> dict[str, dict[str, Any]]:
    """Per swapped task: how often the scene's own task got done with its own instruction and with the other's.

    A policy that follows the words does the scene's task far less often when asked the partner's
    instruction; one that reads only the scene does it as often either way.
    """
    table: dict[str, dict[str, Any]] = {}
    for task, other in swaps(report.tasks).items():
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
        "suite": report.name,  # the --suite it ran
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
