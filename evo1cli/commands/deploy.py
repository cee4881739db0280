"""`evo1 deploy` (closed-loop rollouts on a real arm) and `evo1 calibrate` (SO-100 calibration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from evo1cli.commands.checkpoints import (
    CHECKPOINT_HELP,
    dataset_key_option,
    device_option,
    dtype_option,
    embodiment_option,
)
from evo1cli.commands.output import console, err_console, print_json
from evo1cli.errors import Evo1Error

HELP = {  # the robot options `evo1 collect`, `evo1 deploy` and `evo1 calibrate` share
    "config": "Robot configuration YAML (default: the packaged one for the robot).",
    "set": "Override a configuration field, e.g. connection.ip=10.0.0.7 (repeatable).",
    "fake": "Simulated arm and rehearsal-video cameras: try everything without hardware.",
    "sim": "The arm's digital twin: MuJoCo physics and cameras under the real driver (the `sim` extra).",
    "scene": "With --sim: the twin's scene (so100-cube-container, xarm6-cube-bowl; default: the robot's).",
}


def deploy(
    robot: str = typer.Argument(..., help="xarm6 or so100."),
    task: str = typer.Option(..., "--task", help="The instruction given to the policy."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP),
    server: str | None = typer.Option(None, "--server", help="Or a running `evo1 serve`, e.g. ws://gpu:9000."),
    replay: Path | None = typer.Option(None, "--replay", help="Or replay a recorded episode of this dataset."),
    episode: int = typer.Option(0, "--episode", help="With --replay: the episode to replay."),
    token: str | None = typer.Option(None, "--token", help="The server's token, if it has one."),
    config: Path | None = typer.Option(None, "--config", help=HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=HELP["set"]),
    fake: bool = typer.Option(False, "--fake", help=HELP["fake"]),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run the whole loop but send nothing to the arm."),
    seconds: float = typer.Option(60.0, "--seconds", help="Length of the rollout."),
    action_steps: int | None = typer.Option(None, "--action-steps", help="Actions per chunk (default: config)."),
    inference: str = typer.Option(
        "sync", "--inference", help="sync (the arm holds while the policy thinks) or async (it keeps moving)."
    ),
    lead: int | None = typer.Option(
        None, "--lead", help="async: ask for the next chunk this many actions ahead (default: measured latency)."
    ),
    blend: int = typer.Option(3, "--blend", help="async: ticks over which a new chunk takes over."),
    home: bool = typer.Option(False, "--home", help="Move to the configured home pose first (slowly)."),
    record: Path | None = typer.Option(None, "--record", help="Also record the rollout into this dataset."),
    embodiment: str | None = embodiment_option(),
    dataset_key: str | None = dataset_key_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the cadence report as JSON."),
) -> None:
    """Closed loop on a real arm: observe, query the policy, execute a chunk at the control rate, repeat.

    Every command passes the safety layer (joint limits, max step per tick, workspace, NaN rejection,
    watchdog); Ctrl-C stops the arm at once. Ends with a cadence report. With --inference async the next
    chunk is computed while the arm executes the current one.

    Examples:

      evo1 deploy so100 -c runs/so100/stage2/checkpoints/last --task "Pick up the cube" --dry-run

      evo1 deploy xarm6 --server ws://gpu-box:9000 --task "Open the drawer" --set connection.ip=192.168.1.222

      evo1 deploy so100 -c CKPT --task "Pick up the cube" --fake --seconds 5 --inference async

      evo1 deploy so100 --replay data/cube --episode 3 --task "Pick up the cube" --fake
    """
    from evo1cli.deploy.replay import ReplayPolicy
    from evo1cli.deploy.rollout import INFERENCE, Execution
    from evo1cli.robots.session import load_robot
    from evo1cli.runtime.policy import open_policy

    if seconds <= 0 or (action_steps is not None and action_steps < 1):
        raise Evo1Error("--seconds must be > 0 and --action-steps >= 1", field="options")
    if inference not in INFERENCE or (replay is not None and inference != "sync"):
        raise Evo1Error(f"must be sync or async (a replay is sync), got {inference!r}", field="--inference")
    if blend < 0 or (lead is not None and lead < 0):
        raise Evo1Error("--blend and --lead must be >= 0", field="options")
    robot_config = load_robot(robot, str(config) if config else None, overrides, fake)
    policy = open_policy(checkpoint, server, replay, device=device, dtype=dtype, embodiment=embodiment,
                         dataset=dataset_key, token=token, episode=episode, robot=robot_config)  # fmt: skip
    try:
        replayed = policy if isinstance(policy, ReplayPolicy) else None  # one chunk of all its actions
        steps = len(replayed.actions) if replayed is not None else action_steps or robot_config.action_steps
        execution = Execution(steps, inference, blend, lead)
        start = replayed.start if replayed is not None else None
        cadence, recorder = _roll_out(robot_config, policy, task, execution, home, start, dry_run, record,
                                      max_ticks=steps if replayed is not None else None, seconds=seconds)  # fmt: skip
    finally:
        policy.close()
    if recorder is not None and recorder.frames:  # the arm is holding, disconnected: take the time to encode
        source = "replay" if replay is not None else "policy"
        recorder.commit(source=source, checkpoint=str(checkpoint or server or replay), dry_run=dry_run)
    report = cadence.summary() | {"robot": robot, "dry_run": dry_run, "action_steps": steps}
    if as_json:
        print_json(report)
    else:
        print_cadence(report)
    if cadence.ended == "Ctrl-C":
        raise typer.Exit(130)
    if cadence.ended.startswith("safety stop"):
        raise typer.Exit(2)


def _roll_out(
    robot_config: Any,
    policy: Any,
    task: str,
    execution: Any,
    home: bool,
    start: Any,
    dry_run: bool,
    record: Path | None,
    *,
    max_ticks: int | None,
    seconds: float,
) -> tuple[Any, Any]:
    """Connect, move to the start (home, or a replay's recorded first pose), run the loop; (cadence, recorder).
    The dataset to record into is opened only once connected; a rollout that fails discards its episode."""
    from evo1cli.collect.dataset import FrameSpec, Recorder, open_dataset
    from evo1cli.deploy.rollout import run_rollout
    from evo1cli.robots.session import RobotSession

    with RobotSession(robot_config, dry_run=dry_run) as session:
        writer = open_dataset(record, FrameSpec.of_robot(robot_config)) if record is not None else None
        if home and not dry_run:
            err_console.print("moving home ...")
            session.safety.move_to(robot_config.home)
        if start is not None and not dry_run:
            err_console.print("moving to the recorded start ...")
            session.safety.move_to(start)
        recorder = Recorder(writer, task) if writer is not None else None
        try:
            cadence = run_rollout(session, policy, task, execution, max_seconds=seconds, max_ticks=max_ticks,
                                  recorder=recorder)  # fmt: skip
        except BaseException:
            if recorder is not None:
                recorder.discard()
            raise
    return cadence, recorder


def print_cadence(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{report['robot']} rollout{' (dry run)' if report['dry_run'] else ''}: {report['ended']}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("control rate", f"{report['achieved_hz']:.1f} Hz of {report['target_hz']:g} Hz")
    table.add_row("ticks (over budget)", f"{report['ticks']} ({report['ticks_over_budget']})")
    table.add_row("policy queries", f"{report['queries']} ({report['inference']}, waited for {report['waits']})")
    if report["inference"] == "async":
        estimate = report["latency_estimate_ms"]
        table.add_row("inference overlap", f"{report['inference_overlap']:.0%} of the query time")
        table.add_row("latency estimate", f"{estimate:.0f} ms, asking {report['lead']} actions ahead" if estimate
                      else "none")  # fmt: skip
        table.add_row("skipped actions", f"{report['skipped_actions']} (dropped chunks {report['dropped_chunks']})")
    table.add_row(
        "largest step",
        f"{report['max_step_at_switch']:.2f} max_step at a chunk switch, {report['max_step_within_chunk']:.2f} within",
    )
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
