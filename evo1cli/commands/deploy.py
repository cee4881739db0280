"""`evo1 deploy` (closed-loop rollouts on a real arm) and `evo1 calibrate` (SO-100 calibration)."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console, print_json
from evo1cli.errors import Evo1Error

HELP = {  # the robot options `evo1 collect`, `evo1 deploy` and `evo1 calibrate` share
    "config": "Robot configuration YAML (default: the packaged one for the robot).",
    "set": "Override a configuration field, e.g. connection.ip=10.0.0.7 (repeatable).",
    "fake": "Simulated arm and rehearsal-video cameras: try everything without hardware.",
}


def deploy(
    robot: str = typer.Argument(..., help="xarm6 or so100."),
    task: str = typer.Option(..., "--task", help="The instruction given to the policy."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="Local policy checkpoint."),
    server: str | None = typer.Option(None, "--server", help="Or a running `evo1 serve`, e.g. ws://gpu:9000."),
    token: str | None = typer.Option(None, "--token", help="The server's token, if it has one."),
    config: Path | None = typer.Option(None, "--config", help=HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=HELP["set"]),
    fake: bool = typer.Option(False, "--fake", help=HELP["fake"]),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run the whole loop but send nothing to the arm."),
    seconds: float = typer.Option(60.0, "--seconds", help="Length of the rollout."),
    action_steps: int | None = typer.Option(None, "--action-steps", help="Actions per chunk (default: config)."),
    home: bool = typer.Option(False, "--home", help="Move to the configured home pose first (slowly)."),
    record: Path | None = typer.Option(None, "--record", help="Also record the rollout into this dataset."),
    embodiment: str | None = typer.Option(None, "--embodiment", help="Stats key (default: the only one)."),
    dataset_key: str | None = typer.Option(None, "--dataset-key", help="Stats key: dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the cadence report as JSON."),
) -> None:
    """Closed loop on a real arm: observe, query the policy, execute a chunk at the control rate, repeat.

    Every command passes the safety layer (joint limits, max step per tick, workspace, NaN rejection,
    watchdog); Ctrl-C stops the arm at once. Ends with a cadence report.

    Examples:

      evo1 deploy so100 -c runs/so100/stage2/checkpoints/last --task "Pick up the cube" --dry-run

      evo1 deploy xarm6 --server ws://gpu-box:9000 --task "Open the drawer" --set connection.ip=192.168.1.222

      evo1 deploy so100 -c CKPT --task "Pick up the cube" --fake --seconds 5
    """
    from evo1cli.collect.dataset import Layout, Recorder, open_dataset
    from evo1cli.commands.convert import checkpoint_dir
    from evo1cli.robots.rollout import local_policy, remote_policy, run_rollout
    from evo1cli.robots.session import RobotSession, load_robot

    if (checkpoint is None) == (server is None):
        raise Evo1Error("give exactly one of --checkpoint DIR and --server URL", field="--checkpoint")
    if seconds <= 0 or (action_steps is not None and action_steps < 1):
        raise Evo1Error("--seconds must be > 0 and --action-steps >= 1", field="options")
    robot_config = load_robot(robot, str(config) if config else None, overrides, fake)
    steps = action_steps or robot_config.action_steps
    policy = (
        local_policy(str(checkpoint_dir(checkpoint)), embodiment, dataset_key)
        if checkpoint is not None
        else remote_policy(str(server), token, embodiment, dataset_key)
    )
    with RobotSession(robot_config, dry_run=dry_run) as session:
        writer = open_dataset(record, Layout.of_robot(robot_config)) if record is not None else None  # once connected
        if home and not dry_run:
            console.print("moving home ...")
            session.safety.move_to(robot_config.home)
        recorder = Recorder(writer, task) if writer is not None else None
        try:
            cadence = run_rollout(session, policy, task, action_steps=steps, max_seconds=seconds, recorder=recorder)
        except BaseException:
            if recorder is not None:
                recorder.discard()
            raise
    if recorder is not None and recorder.frames:  # the arm is holding, disconnected: take the time to encode
        recorder.commit(source="policy", checkpoint=str(checkpoint or server), dry_run=dry_run)
    report = cadence.summary() | {"robot": robot, "dry_run": dry_run, "action_steps": steps}
    if as_json:
        print_json(report)
    else:
        print_cadence(report)
    if cadence.ended == "Ctrl-C":
        raise typer.Exit(130)
    if cadence.ended.startswith("safety stop"):
        raise typer.Exit(2)


def print_cadence(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{report['robot']} rollout{' (dry run)' if report['dry_run'] else ''}: {report['ended']}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("control rate", f"{report['achieved_hz']:.1f} Hz of {report['target_hz']:g} Hz")
    table.add_row("ticks (over budget)", f"{report['ticks']} ({report['ticks_over_budget']})")
    table.add_row("policy queries", str(report["queries"]))
    for phase in ("observe", "infer", "act", "record"):
        t = report[phase]
        if phase == "record" and not t["total_s"]:
            continue
        table.add_row(phase, f"{t['mean_ms']:.1f} ms mean, {t['p95_ms']:.1f} ms p95, {t['total_s']:.1f} s")
    interventions = report["safety_interventions"]
    table.add_row("safety interventions", ", ".join(f"{k} {v}" for k, v in interventions.items()) or "none")
    console.print(table)


def calibrate(
    robot: str = typer.Argument(..., help="so100 (the xArm6 needs no calibration)."),
    leader: bool = typer.Option(False, "--leader", help="Calibrate the leader arm instead of the follower."),
    config: Path | None = typer.Option(None, "--config", help=HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=HELP["set"]),
    fake: bool = typer.Option(False, "--fake", help=HELP["fake"]),
) -> None:
    """Calibrate an SO-100 arm as LeRobot does; the file goes where LeRobot keeps its calibrations.

    1. Move the arm to the middle of its range and press Enter. 2. Move every joint through its whole
    range, then press Enter.

    Examples:

      evo1 calibrate so100

      evo1 calibrate so100 --leader --set connection.leader_port=/dev/ttyACM1
    """
    if robot != "so100":
        raise Evo1Error("only the so100 is calibrated (the xArm6 controller knows its own joints)", field="robot")
    from evo1cli.robots.session import calibrate as run
    from evo1cli.robots.session import load_robot

    robot_config = load_robot(robot, str(config) if config else None, overrides, fake)
    path = run(robot_config, leader, say=console.print)
    console.print(f"wrote {path}")
