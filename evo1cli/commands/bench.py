"""`evo1 bench ...`: simulation benchmarks (RoboTwin: the plug-in for a GPU machine)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from evo1cli.bench.harness import BenchProtocol
from evo1cli.bench.suites import SUITES, Suite, flag, get_suite
from evo1cli.client import wire
from evo1cli.client.chunks import Policy
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


def parameters(suite: Suite) -> list[inspect.Parameter]:
    """`evo1 bench <suite>`'s options in help order: the common ones (protocol defaults from the suite's
    protocol), each followed by the suite's own options that name it as `after`."""
    protocol, command = suite.protocol, suite.command
    worded = command.help.get
    if command.expert:
        checkpoint = [
            ("checkpoint", Path | None, typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP)),
            (
                "policy",
                str,
                typer.Option("checkpoint", "--policy", help="checkpoint, or expert (the scripted experts)."),
            ),
        ]
    else:
        checkpoint = [("checkpoint", Path, typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP))]
    common = [
        *checkpoint,
        ("tasks", str, typer.Option(command.tasks[0], "--tasks", help=command.tasks[1])),
        ("episodes", int, typer.Option(protocol.episodes, "--episodes", help=worded("episodes", "Episodes per task."))),
        ("seed", int, typer.Option(protocol.seed, "--seed", help=worded("seed", "Episode k uses seed + k."))),
        ("workers", int, typer.Option(1, "--workers", help="Simulator processes; the policy runs batched over them.")),
        ("out", Path, typer.Option(Path(f"runs/bench/{suite.name}"), "--out", help="Report directory.")),
        ("action_steps", int,
         typer.Option(protocol.action_steps, "--action-steps", help="Actions executed per chunk.")),
        ("max_steps", int | None,
         typer.Option(protocol.max_steps, "--max-steps", help=worded("max_steps", "Steps per episode at most."))),
        ("videos", int, typer.Option(1, "--videos", help="Episodes filmed per task (the first ones); 0 for none.")),
        ("embodiment", str | None, embodiment_option()),
        ("dataset_key", str | None, dataset_key_option()),
        ("device", str, device_option()),
        ("dtype", str, dtype_option()),
        ("as_json", bool, typer.Option(False, "--json", help="Print eval_info.json's summary for machines.")),
    ]  # fmt: skip
    out: list[inspect.Parameter] = []
    for name, kind, option in common:
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
        for own in (o for o in command.options if o.after == name):
            option = typer.Option(own.default, flag(own.name), help=own.help)
            out.append(inspect.Parameter(own.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=own.type))
    return out


def bench_command(suite: Suite) -> Callable[..., None]:
    """The Typer command for a suite of the registry: its options (see `parameters`) and its help."""

    def command(**values: Any) -> None:
        run_command(suite, values)

    command.__signature__ = inspect.Signature(parameters(suite))
    command.__doc__ = suite.command.doc
    return command


def run_command(suite: Suite, values: dict[str, Any]) -> None:
    """Check the options, choose the tasks and protocol (the suite's `plan`), load the policy, run, report."""
    from evo1cli.bench.evaluate import process_group
    from evo1cli.bench.suites import SETTINGS

    v = values
    max_steps = 1 if v["max_steps"] is None else v["max_steps"]  # None: each task's own budget
    if min(v["episodes"], v["action_steps"], v["workers"], max_steps) < 1 or v["videos"] < 0:
        raise Evo1Error("--episodes, --action-steps, --max-steps and --workers must be >= 1", field="options")
    settings = {k: v[k] for k in (*SETTINGS, *(o.name for o in suite.command.options))}
    names, protocol = suite.plan(v["tasks"], settings)
    policy, name, image_size = None, "expert", protocol.image_size
    group = process_group()
    if v.get("policy", "checkpoint") == "checkpoint":
        if v["checkpoint"] is None:
            raise Evo1Error("give --checkpoint DIR, or --policy expert", field="--checkpoint")
        policy, name, image_size = load_policy_fn(
            v["checkpoint"], v["embodiment"], v["dataset_key"], group, v["device"], v["dtype"]
        )
    elif v["policy"] != "expert":
        raise Evo1Error(f"must be checkpoint or expert, got {v['policy']!r}", field="--policy")
    out, videos = v["out"], v["videos"]
    protocol = protocol.replace(image_size=image_size, videos=videos, video_dir=str(out / "videos") if videos else None)
    run_suite(suite.name, names, protocol, policy, name, v["workers"], out, v["as_json"], group)


for _name in SUITES:
    app.command(_name)(bench_command(get_suite(_name)))


def load_policy_fn(
    checkpoint: Path, embodiment: str | None, dataset_key: str | None, group: Any, device: str, dtype: str
) -> tuple[Any, str, int]:
    """(the policy, its name for the report, its image size) on this process's device: the launched
    group's (one GPU per process) unless --device names one."""
    from evo1cli.runtime.policy import open_checkpoint

    device = str(group.device) if group is not None and device == "auto" else device
    loaded = open_checkpoint(checkpoint, device=device, dtype=dtype, embodiment=embodiment, dataset=dataset_key)
    return loaded, str(checkpoint), loaded.image_size


def run_suite(
    suite: str,
    names: list[str],
    protocol: BenchProtocol,
    policy: Policy | None,
    name: str,
    workers: int,
    out: Path,
    as_json: bool,
    group: Any,
) -> None:
    """Run, then (on the main process) write the report and print it; progress shows the running success rate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evo1cli.bench.evaluate import eval_info, evaluate, share
    from evo1cli.bench.report import write_report

    main = group is None or group.is_main_process
    solved = [0, 0]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not main) as bar:
        task = bar.add_task(suite, total=len(share(names, group)) * protocol.episodes)

        def on_episode(record: Any) -> None:
            solved[0] += int(record.success)
            solved[1] += 1
            bar.update(task, advance=1, description=f"{suite}: {solved[0]}/{solved[1]} solved")

        records, levels, seconds = evaluate(suite, names, protocol, policy, workers, on_episode, group)
    if group is not None:  # every collective is done: leave the group cleanly (gloo aborts at exit otherwise)
        group.destroy_process_group()
    if not main:
        return
    info = eval_info(suite, protocol, name, records, levels, seconds)
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
