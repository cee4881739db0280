"""`evo1 collect`: record demonstrations into a LeRobot v2.1 dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console, print_json, progress
from evo1cli.errors import Evo1Error

ROBOTS = ("metaworld",)


def collect(
    robot: str = typer.Option(..., "--robot", help="Where demonstrations come from: metaworld."),
    out: Path = typer.Option(..., "--out", help="Dataset directory (created, or appended to)."),
    task: str = typer.Option("reach-v3", "--task", help="Meta-World task, a comma list, mt10 or mt50."),
    episodes: int = typer.Option(50, "--episodes", help="Episodes to keep per task."),
    resolution: int = typer.Option(448, "--resolution", help="Camera image size (square)."),
    cameras: str = typer.Option("corner2", "--cameras", help="Comma list of scene cameras to record."),
    seed: int = typer.Option(0, "--seed", help="Base seed; episode k uses seed + k."),
    max_steps: int = typer.Option(500, "--max-steps", help="Steps per episode at most."),
    full_length: bool = typer.Option(
        False, "--full-length", help="Keep recording after success until --max-steps (fixed-length episodes)."
    ),
    keep_failures: bool = typer.Option(False, "--keep-failures", help="Keep episodes the expert did not solve."),
    fast_render: bool = typer.Option(
        False, "--fast-render", help="Meta-World without shadows and reflections (faster; bench with it too)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary for machines."),
) -> None:
    """Record scripted-expert demonstrations (each episode committed atomically; Ctrl-C keeps the finished ones).

    Examples:

      evo1 collect --robot metaworld --task reach-v3 --episodes 50 --out data/reach

      evo1 collect --robot metaworld --task mt10 --episodes 5 --resolution 224 --out data/mt10
    """
    if robot not in ROBOTS:
        raise Evo1Error(f"must be one of {', '.join(ROBOTS)}, got {robot!r}", field="--robot")
    if episodes < 1 or resolution < 16 or max_steps < 1:
        raise Evo1Error("--episodes and --max-steps must be >= 1 and --resolution >= 16", field="options")
    from evo1cli.collect.metaworld import collect as run
    from evo1cli.sim.metaworld_tasks import resolve_tasks

    tasks = resolve_tasks(task)
    try:
        with progress(f"collecting {robot} episodes") as update:
            summary = run(
                out,
                tasks,
                episodes,
                image_size=resolution,
                seed=seed,
                max_steps=max_steps,
                until_success=not full_length,
                keep_failures=keep_failures,
                cameras=tuple(c.strip() for c in cameras.split(",") if c.strip()),
                fast_render=fast_render,
                progress=update,
            )
    except KeyboardInterrupt:
        console.print(f"interrupted: every episode finished before Ctrl-C is saved in {out}; run again to append")
        raise typer.Exit(130) from None
    if as_json:
        print_json({"out": str(out), "tasks": tasks, **vars(summary)})
    else:
        console.print(
            f"wrote {summary.kept} episodes ({summary.frames} frames) to {out}; "
            f"{summary.failed} unsolved episode(s) dropped"
        )
