"""`evo1 bench ...`: simulation benchmarks (RoboTwin: the plug-in for a GPU machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from evo1cli.bench.libero import PROTOCOL as LIBERO
from evo1cli.bench.metaworld import PROTOCOL as METAWORLD
from evo1cli.client import wire
from evo1cli.commands.checkpoints import (
    CHECKPOINT_HELP,
    dataset_key_option,
    device_option,
    dtype_option,
    embodiment_option,
)
from evo1cli.commands.output import console, print_json
from evo1cli.errors import Evo1Error
from evo1cli.serving.robotwin import EXECUTE_STEPS

app = typer.Typer(help="Benchmark policies in simulation.", no_args_is_help=True)


@app.command("robotwin")
def robotwin(
    export_plugin: Path | None = typer.Option(None, "--export-plugin", help="Write the RoboTwin policy folder here."),
    server_url: str = typer.Option(wire.DEFAULT_URL, "--server-url", help="Where `evo1 serve` listens."),
    token: str | None = typer.Option(None, "--token", help="The server's token, if it has one."),
    embodiment: str = embodiment_option("aloha_joint"),
    dataset_key: str = dataset_key_option("robotwin_{task_name}"),  # {task_name}: one key per task
    execute: int = typer.Option(EXECUTE_STEPS, "--execute", help="Actions executed per chunk (the authors' 37)."),
) -> None:
    """RoboTwin 2.0 needs SAPIEN with a GPU renderer: export the plug-in that drives `evo1 serve` from it.

    Example:

      evo1 bench robotwin --export-plugin RoboTwin/policy/evo1 --server-url ws://gpu-box:9000
    """
    if export_plugin is None:
        raise Evo1Error(
            "RoboTwin runs only where SAPIEN has a GPU renderer; use --export-plugin DIR and run it there",
            field="--export-plugin",
        )
    from evo1cli.serving.robotwin import export_plugin as export

    export(export_plugin, server_url, token, embodiment, dataset_key, execute)
    console.print(f"wrote {export_plugin}: copy it to RoboTwin/policy/evo1 and see its README.md")


@app.command("metaworld")
def metaworld(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP),
    policy: str = typer.Option("checkpoint", "--policy", help="checkpoint, or expert (the scripted experts)."),
    tasks: str = typer.Option("mt50", "--tasks", help="mt10, mt50, or a comma list of task names."),
    level: str | None = typer.Option(None, "--level", help="Only one difficulty: easy, medium, hard, very_hard."),
    episodes: int = typer.Option(METAWORLD.episodes, "--episodes", help="Episodes per task."),
    seed: int = typer.Option(METAWORLD.seed, "--seed", help="Episode k uses seed + k."),
    workers: int = typer.Option(1, "--workers", help="Simulator processes; the policy runs batched over them."),
    out: Path = typer.Option(Path("runs/bench/metaworld"), "--out", help="Report directory."),
    action_steps: int = typer.Option(METAWORLD.action_steps, "--action-steps", help="Actions executed per chunk."),
    max_steps: int = typer.Option(METAWORLD.max_steps, "--max-steps", help="Steps per episode at most."),
    variations: str = typer.Option(METAWORLD.variations, "--variations", help="authors (MT50 seed draws) or per-seed."),
    videos: int = typer.Option(1, "--videos", help="Episodes filmed per task (the first ones); 0 for none."),
    fast_render: bool = typer.Option(
        METAWORLD.render == "fast",
        "--fast-render",
        help="Shadows and reflections off (faster; match how the training data was rendered).",
    ),
    prompt: str | None = typer.Option(
        None, "--prompt", help="Ask this instruction instead of each task's own (does the policy follow the words?)."
    ),
    embodiment: str | None = embodiment_option(),
    dataset_key: str | None = dataset_key_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    as_json: bool = typer.Option(False, "--json", help="Print eval_info.json's summary for machines."),
) -> None:
    """Meta-World MT50 with the authors' protocol: success per task, per level and overall, videos, a report.

    Examples:

      evo1 bench metaworld --checkpoint runs/metaworld/stage2/checkpoints/last --workers 2

      evo1 bench metaworld --policy expert --tasks mt10 --episodes 3

      evo1 bench metaworld -c runs/quickstart/stage2/checkpoints/last --tasks button-press-topdown-v3 --episodes 20

      evo1 bench metaworld -c runs/mt10/stage2/checkpoints/last --tasks drawer-open-v3 \
        --prompt "Push and close a drawer"
    """
    from evo1cli.bench.evaluate import process_group
    from evo1cli.bench.harness import RunSpec
    from evo1cli.bench.metaworld import VARIATIONS
    from evo1cli.sim.metaworld_tasks import DIFFICULTY_GROUPS, resolve_tasks

    names = resolve_tasks(tasks)
    if level is not None:
        if level not in DIFFICULTY_GROUPS:
            raise Evo1Error(f"must be one of {', '.join(DIFFICULTY_GROUPS)}, got {level!r}", field="--level")
        names = [t for t in names if t in DIFFICULTY_GROUPS[level]]
    if variations not in VARIATIONS:
        raise Evo1Error(f"must be one of {', '.join(VARIATIONS)}, got {variations!r}", field="--variations")
    if min(episodes, action_steps, max_steps, workers) < 1 or videos < 0:
        raise Evo1Error("--episodes, --action-steps, --max-steps and --workers must be >= 1", field="options")
    if prompt is not None and not prompt.strip():
        raise Evo1Error("must not be empty", field="--prompt")
    fn, name, image_size = None, "expert", 448
    group = process_group()
    if policy == "checkpoint":
        if checkpoint is None:
            raise Evo1Error("give --checkpoint DIR, or --policy expert", field="--checkpoint")
        fn, name, image_size = load_policy_fn(checkpoint, embodiment, dataset_key, group, device, dtype)
    elif policy != "expert":
        raise Evo1Error(f"must be checkpoint or expert, got {policy!r}", field="--policy")
    options: dict[str, Any] = {"variations": variations, "fast_render": fast_render}
    if prompt is not None:
        options["prompts"] = dict.fromkeys(names, prompt)
    spec = RunSpec(
        "metaworld", episodes, seed, action_steps, image_size, videos, max_steps,
        str(out / "videos") if videos else None, options,
    )  # fmt: skip
    run_suite("metaworld", names, spec, fn, name, workers, out, as_json, group)


def libero_command(suite: str) -> Any:
    """`evo1 bench <suite>` for `libero` (all four suites) or one of them."""
    which = "All four LIBERO suites" if suite == "libero" else f"LIBERO-{suite.split('-')[1].capitalize()}"

    def command(
        checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP),
        tasks: str = typer.Option("all", "--tasks", help="all, or a comma list of task names or indices (0-9)."),
        episodes: int = typer.Option(LIBERO.episodes, "--episodes", help="Episodes per task (init states 0..N-1)."),
        seed: int = typer.Option(LIBERO.seed, "--seed", help="Env seed; episode k's policy noise uses seed + k."),
        workers: int = typer.Option(1, "--workers", help="Simulator processes; the policy runs batched over them."),
        out: Path = typer.Option(Path(f"runs/bench/{suite}"), "--out", help="Report directory."),
        action_steps: int = typer.Option(LIBERO.action_steps, "--action-steps", help="Actions executed per chunk."),
        max_steps: int | None = typer.Option(
            LIBERO.max_steps, "--max-steps", help="Step budget (default 220/280/300/520)."
        ),
        settle_steps: int = typer.Option(
            LIBERO.settle_steps, "--settle-steps", help="Still steps after reset (not counted)."
        ),
        videos: int = typer.Option(1, "--videos", help="Episodes filmed per task (the first ones); 0 for none."),
        embodiment: str | None = embodiment_option(),
        dataset_key: str | None = dataset_key_option(),
        device: str = device_option(),
        dtype: str = dtype_option(),
        as_json: bool = typer.Option(False, "--json", help="Print eval_info.json's summary for machines."),
    ) -> None:
        from evo1cli.bench import libero
        from evo1cli.bench.evaluate import process_group
        from evo1cli.bench.harness import RunSpec

        if min(episodes, action_steps, workers, max_steps or 1) < 1 or min(videos, settle_steps) < 0:
            raise Evo1Error("--episodes, --action-steps, --max-steps and --workers must be >= 1", field="options")
        suites = libero.suite_names(suite)
        names = libero.resolve_tasks(suites, tasks)
        group = process_group()
        fn, name, image_size = load_policy_fn(checkpoint, embodiment, dataset_key, group, device, dtype)
        options = {"suites": suites, "settle_steps": settle_steps, "gripper": "> 0.5 -> -1 (open), else +1"}
        spec = RunSpec(
            "libero", episodes, seed, action_steps, image_size, videos, max_steps,
            str(out / "videos") if videos else None, options,
        )  # fmt: skip
        run_suite(suite, names, spec, fn, name, workers, out, as_json, group)

    command.__doc__ = f"""{which} with the standard protocol (needs the `libero` extra): success per task and suite.

    Two views, 8-d state, 14 actions per chunk, binarised gripper, 10 settle steps, budgets 220/280/300/520.

    Examples:

      evo1 bench {suite} --checkpoint runs/libero/stage2/checkpoints/last --workers 4

      evo1 bench {suite} -c CKPT --tasks 0,1 --episodes 5 --videos 2
    """
    return command


for _suite in ("libero", "libero-spatial", "libero-object", "libero-goal", "libero-long"):
    app.command(_suite)(libero_command(_suite))


def load_policy_fn(
    checkpoint: Path, embodiment: str | None, dataset_key: str | None, group: Any, device: str, dtype: str
) -> tuple[Any, str, int]:
    """(the policy, its name for the report, its image size) on this process's device: the launched
    group's (one GPU per process) unless --device names one."""
    from evo1cli.runtime.policy import LocalPolicy, open_policy

    device = str(group.device) if group is not None and device == "auto" else device
    loaded = open_policy(checkpoint, device=device, dtype=dtype, embodiment=embodiment, dataset=dataset_key)
    assert isinstance(loaded, LocalPolicy)
    return loaded, str(checkpoint), loaded.image_size


def run_suite(
    suite: str, names: list[str], spec: Any, fn: Any, name: str, workers: int, out: Path, as_json: bool, group: Any
) -> None:
    """Run, then (on the main process) write the report and print it; progress shows the running success rate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evo1cli.bench.evaluate import eval_info, evaluate, share
    from evo1cli.bench.report import write_report

    main = group is None or group.is_main_process
    solved = [0, 0]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not main) as bar:
        task = bar.add_task(suite, total=len(share(names, group)) * spec.episodes)

        def on_episode(record: Any) -> None:
            solved[0] += int(record.success)
            solved[1] += 1
            bar.update(task, advance=1, description=f"{suite}: {solved[0]}/{solved[1]} solved")

        records, levels, seconds = evaluate(spec.suite, names, spec, fn, workers, on_episode, group)
    if group is not None:  # every collective is done: leave the group cleanly (gloo aborts at exit otherwise)
        group.destroy_process_group()
    if not main:
        return
    info = eval_info(suite, spec, name, records, levels, seconds)
    paths = write_report(info, out)
    if as_json:
        print_json({k: info[k] for k in ("suite", "policy", "protocol", "tasks", "levels", "overall", "seconds")})
        return
    print_summary(info, paths)


def print_summary(info: dict, paths: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{info['suite']}: {info['policy']}")
    for column in ("task", "level", "solved", "success", "mean steps"):
        table.add_column(column, justify="left" if column in ("task", "level") else "right")
    for task, t in info["tasks"].items():
        table.add_row(
            task,
            t["level"] or "",
            f"{t['successes']}/{t['episodes']}",
            f"{t['success_rate']:.0%}",
            f"{t['mean_steps']:.0f}",
        )
    console.print(table)
    overall = info["overall"]
    line = f"mean over tasks {overall['mean_over_tasks']:.1%} ({overall['successes']}/{overall['episodes']} episodes)"
    if "mean_over_levels" in overall:
        levels = ", ".join(f"{k} {v['success_rate']:.1%}" for k, v in info["levels"].items())
        line += f"; mean over levels {overall['mean_over_levels']:.1%} ({levels})"
    console.print(f"{line}; {info['seconds']:.0f} s")
    console.print(f"report: {paths['html']}  results: {paths['json']}")
