"""`evo1 collect`: record demonstrations into a LeRobot v2.1 (or v3.0) dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from evo1cli.commands.deploy import HELP
from evo1cli.commands.output import console, err_console, print_json, progress
from evo1cli.errors import Evo1Error

if TYPE_CHECKING:
    from evo1cli.collect.dataset import RecordingSummary
    from evo1cli.collect.teleop import TeleopOptions

ROBOTS = ("metaworld", "xarm6", "so100")


def collect(
    robot: str = typer.Option(..., "--robot", help="Where demonstrations come from: metaworld, xarm6, so100."),
    out: Path = typer.Option(..., "--out", help="Dataset directory (created, or appended to)."),
    layout: str | None = typer.Option(
        None,
        "--format",
        help="LeRobot layout of a new dataset: v2.1 (default; Evo-1 trains on it) or v3.0 (LeRobot >= 0.4).",
    ),
    task: str | None = typer.Option(
        None, "--task", help="Real robots: the instruction. Meta-World: a task, comma list, mt10 or mt50 [reach-v3]."
    ),
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
    episode_time: float = typer.Option(60.0, "--episode-time", help="Real robots: seconds per episode at most."),
    reset_time: float = typer.Option(10.0, "--reset-time", help="Real robots: seconds to reset between episodes."),
    teleop: str | None = typer.Option(
        None, "--teleop", help="Real robots: leader (SO-100), hand (xArm6 teach mode) or keyboard (jog joints)."
    ),
    view: bool = typer.Option(False, "--view", help="Real robots: show the cameras live in a window."),
    config: Path | None = typer.Option(None, "--config", help=HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=HELP["set"]),
    fake: bool = typer.Option(False, "--fake", help=HELP["fake"]),
    sim: bool = typer.Option(False, "--sim", help=HELP["sim"]),
    scene: str | None = typer.Option(None, "--scene", help=HELP["scene"]),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary for machines."),
) -> None:
    """Record demonstrations: teleoperation on a real arm or its digital twin, or Meta-World's scripted experts.

    Real robots record at the control rate (30 Hz): state = the arm's joints, action = the absolute joint
    target (SO-100: the leader arm; xArm6: hand-guiding in teach mode, g closes or opens the gripper and its
    action is the command sent). Keys: s/space save the episode,
    d discard it, r record it again, q save and quit. Each episode is committed atomically; Ctrl-C keeps
    the finished ones.

    --sim runs the same loop on the arm's digital twin (MuJoCo under the real driver; the scene's instruction
    is the default --task); --teleop scripted lets a scripted person do the demonstrations through the same
    keys, attempt k placed by --seed + k; each episode line records `success`.

    A new dataset is a LeRobot v2.1 one unless --format v3.0; an existing one is appended to in its own layout.

    Examples:

      evo1 collect --robot so100 --task "Pick up the cube" --episodes 50 --out data/cube

      evo1 collect --robot xarm6 --task "Open the drawer" --set connection.ip=192.168.1.222 --out data/drawer

      evo1 collect --robot so100 --task "Try it" --fake --episodes 2 --episode-time 5 --out /tmp/rehearsal

      evo1 collect --robot so100 --sim --teleop scripted --episodes 40 --seed 0 --out data/so100-twin

      evo1 collect --robot xarm6 --sim --teleop keyboard --view --episodes 5 --out data/xarm6-twin

      evo1 collect --robot metaworld --task reach-v3 --episodes 50 --out data/reach

      evo1 collect --robot metaworld --task mt10 --episodes 5 --resolution 224 --out data/mt10

      evo1 collect --robot metaworld --task reach-v3 --episodes 50 --format v3.0 --out data/reach-v30
    """
    if robot not in ROBOTS:
        raise Evo1Error(f"must be one of {', '.join(ROBOTS)}, got {robot!r}", field="--robot")
    if robot == "metaworld":
        tasks, result = _metaworld(
            out, task or "reach-v3", episodes, resolution, cameras, seed, max_steps, full_length, keep_failures,
            fast_render, layout,
        )  # fmt: skip
        about, dropped = {"tasks": tasks}, f"{result.failed} unsolved episode(s) dropped"
    else:
        from evo1cli.collect.teleop import TeleopOptions

        options = TeleopOptions(episodes, episode_time, reset_time, teleop, view, layout, seed)
        result = _teleop(robot, task, out, options, config, overrides, fake, sim, scene)
        about, dropped = (
            {"robot": robot, "task": task},
            f"{result.discarded} discarded; {result.over_budget} ticks over budget",
        )
    if as_json:
        print_json({"out": str(out), **about, **vars(result)})
    else:
        console.print(f"wrote {result.kept} episodes ({result.frames} frames) to {out}; {dropped}")
    if result.stopped:
        err_console.print(f"safety stop ({result.stopped}): the arm was stopped; the episodes saved before are kept")
        raise typer.Exit(2)
    if result.interrupted:
        raise typer.Exit(130)


def _metaworld(
    out: Path,
    task: str,
    episodes: int,
    resolution: int,
    cameras: str,
    seed: int,
    max_steps: int,
    full_length: bool,
    keep_failures: bool,
    fast_render: bool,
    layout: str | None,
) -> tuple[list[str], RecordingSummary]:
    if episodes < 1 or resolution < 16 or max_steps < 1:
        raise Evo1Error("--episodes and --max-steps must be >= 1 and --resolution >= 16", field="options")
    from evo1cli.collect.metaworld import collect
    from evo1cli.sim.metaworld_tasks import resolve_tasks

    tasks = resolve_tasks(task)
    try:
        with progress("collecting metaworld episodes") as update:
            summary = collect(
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
                version=layout,
            )
    except KeyboardInterrupt:
        console.print(f"interrupted: every episode finished before Ctrl-C is saved in {out}; run again to append")
        raise typer.Exit(130) from None
    return tasks, summary


def _teleop(
    robot: str,
    task: str | None,
    out: Path,
    options: TeleopOptions,
    config: Path | None,
    overrides: list[str],
    fake: bool,
    sim: bool,
    scene: str | None,
) -> RecordingSummary:
    from evo1cli.robots.session import load_robot

    robot_config = load_robot(robot, str(config) if config else None, overrides, fake, sim, scene)
    if not task and sim:
        from evo1cli.sim.twin import open_scene

        task = open_scene(robot, robot_config.connection["sim"]).instruction
    if not task:
        raise Evo1Error("give the demonstrations' instruction, e.g. --task 'Pick up the cube'", field="--task")
    if options.episodes < 1 or options.episode_s <= 0 or options.reset_s < 0:
        raise Evo1Error("--episodes >= 1, --episode-time > 0 and --reset-time >= 0", field="options")
    from rich.console import Console
    from rich.live import Live

    from evo1cli.collect.teleop import collect_teleop

    display = Console(stderr=True)  # stdout stays clean for --json
    with Live(console=display, transient=True, refresh_per_second=4) as live:
        return collect_teleop(robot_config, task, out, options, say=display.print, status=live.update)
