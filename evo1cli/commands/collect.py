"""`evo1 collect`: record demonstrations into a LeRobot v2.1 (or v3.0) dataset."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from evo1cli.commands.deploy import HELP
from evo1cli.commands.output import console, print_json, progress
from evo1cli.errors import Evo1Error

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
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary for machines."),
) -> None:
    """Record demonstrations: teleoperation on a real arm, or Meta-World's scripted experts.

    Real robots record at the control rate (30 Hz): state = the arm's joints, action = the absolute joint
    target (SO-100: the leader arm; xArm6: hand-guiding in teach mode). Keys: s/space save the episode,
    d discard it, r record it again, q save and quit. Each episode is committed atomically; Ctrl-C keeps
    the finished ones.

    A new dataset is a LeRobot v2.1 one unless --format v3.0; an existing one is appended to in its own layout.

    Examples:

      evo1 collect --robot so100 --task "Pick up the cube" --episodes 50 --out data/cube

      evo1 collect --robot xarm6 --task "Open the drawer" --set connection.ip=192.168.1.222 --out data/drawer

      evo1 collect --robot so100 --task "Try it" --fake --episodes 2 --episode-time 5 --out /tmp/rehearsal

      evo1 collect --robot metaworld --task reach-v3 --episodes 50 --out data/reach

      evo1 collect --robot metaworld --task mt10 --episodes 5 --resolution 224 --out data/mt10

      evo1 collect --robot metaworld --task reach-v3 --episodes 50 --format v3.0 --out data/reach-v30
    """
    if robot not in ROBOTS:
        raise Evo1Error(f"must be one of {', '.join(ROBOTS)}, got {robot!r}", field="--robot")
    if robot != "metaworld":
        if not task:
            raise Evo1Error("give the demonstrations' instruction, e.g. --task 'Pick up the cube'", field="--task")
        options = TeleopOptions(episode_time, reset_time, teleop, view)
        collect_robot(robot, task, episodes, out, options, config, overrides, fake, as_json, layout)
        return
    task = task or "reach-v3"
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
                version=layout,
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


@dataclass(frozen=True)
class TeleopOptions:
    episode_time: float
    reset_time: float
    teleop: str | None  # None: the robot's default
    view: bool


def collect_robot(
    robot: str,
    task: str,
    episodes: int,
    out: Path,
    options: TeleopOptions,
    config: Path | None,
    overrides: list[str],
    fake: bool,
    as_json: bool,
    layout: str | None = None,
) -> None:
    """Teleoperation on a real (or `--fake`) arm; see `evo1cli.robots.teleop`."""
    from rich.console import Console
    from rich.live import Live

    from evo1cli.robots.session import RobotSession, load_robot, make_leader
    from evo1cli.robots.teleop import (
        HandGuiding,
        KeyboardJog,
        LeaderArm,
        NoKeys,
        TerminalKeys,
        open_robot_dataset,
        record_teleop,
    )
    from evo1cli.robots.view import CameraView

    if episodes < 1 or options.episode_time <= 0 or options.reset_time < 0:
        raise Evo1Error("--episodes >= 1, --episode-time > 0 and --reset-time >= 0", field="options")
    mode = options.teleop or ("leader" if robot == "so100" else "hand")
    allowed = ("leader", "keyboard") if robot == "so100" else ("hand", "keyboard")
    if mode not in allowed:
        raise Evo1Error(f"{robot} teleoperation is one of {', '.join(allowed)}, got {mode!r}", field="--teleop")
    keys = TerminalKeys() if TerminalKeys.available() else None
    if mode == "keyboard" and keys is None:
        raise Evo1Error("keyboard teleoperation needs an interactive terminal", field="--teleop")
    robot_config = load_robot(robot, str(config) if config else None, overrides, fake)
    view = CameraView() if options.view else None
    with RobotSession(robot_config) as session, contextlib.ExitStack() as stack:
        writer = open_robot_dataset(out, robot_config, layout)  # once connected: a failed connection leaves no dataset
        if mode == "leader":
            source = LeaderArm(make_leader(robot_config))
        elif mode == "hand":
            source = HandGuiding(session.arm)
        else:
            source = KeyboardJog(np.array(robot_config.limits.max_step) / 2)
        active = stack.enter_context(keys.active()) if keys is not None else NoKeys()
        display = Console(stderr=True)  # stdout stays clean for --json
        live = stack.enter_context(Live(console=display, transient=True, refresh_per_second=4))
        jog = "; 1-9 pick a joint, +/- move it" if mode == "keyboard" else ""
        display.print(f"{robot}: {source.name}; keys: s/space save, d discard, r again, q quit{jog}; Ctrl-C stops")

        def status(phase: str, kept: int, seconds: float) -> None:
            line = f"episode {kept + 1}/{episodes}: {phase} {seconds:5.1f} s"
            live.update(line)
            if view is not None:
                view.show(session.read_images(), line)

        summary = record_teleop(
            session, source, writer, task, episodes, options.episode_time, options.reset_time, active, status
        )
        if view is not None:
            view.close()
    if as_json:
        print_json({"out": str(out), "robot": robot, "task": task, **vars(summary)})
    else:
        console.print(
            f"wrote {summary.kept} episodes ({summary.frames} frames) to {out}; {summary.discarded} discarded; "
            f"{summary.over_budget} ticks over budget"
        )
    if summary.interrupted:
        raise typer.Exit(130)
