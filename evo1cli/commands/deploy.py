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
    task: str | None = typer.Option(
        None, "--task", help="The instruction given to the policy (with --sim: the scene's by default)."
    ),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP),
    server: str | None = typer.Option(None, "--server", help="Or a running `evo1 serve`, e.g. ws://gpu:9000."),
    replay: Path | None = typer.Option(None, "--replay", help="Or replay a recorded episode of this dataset."),
    episode: int = typer.Option(0, "--episode", help="With --replay: the episode to replay."),
    token: str | None = typer.Option(None, "--token", help="The server's token, if it has one."),
    config: Path | None = typer.Option(None, "--config", help=HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=HELP["set"]),
    fake: bool = typer.Option(False, "--fake", help=HELP["fake"]),
    sim: bool = typer.Option(False, "--sim", help=HELP["sim"]),
    scene: str | None = typer.Option(None, "--scene", help=HELP["scene"]),
    episodes: int = typer.Option(1, "--episodes", help="With --sim: episodes, each on a placement of its own."),
    seed: int = typer.Option(0, "--seed", help="With --sim: episode k is placed by seed k of deploy's block."),
    out: Path | None = typer.Option(
        None, "--out", help="With --sim: where the videos and report.json go [runs/deploy/<scene>]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run the whole loop but send nothing to the arm."),
    seconds: float | None = typer.Option(
        None, "--seconds", help="Length of the rollout [60; with --sim: the scene's episode length]."
    ),
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

      evo1 deploy so100 --sim -c runs/so100/stage2/checkpoints/last --episodes 20 --json

      evo1 deploy xarm6 --sim -c CKPT --episodes 5 --inference async --set cameras.image_1.device=twin://image_2

    With --sim the arm is its digital twin: each episode places the cube by a seed that collection never
    uses (deploy's seeds start 1,000,000 past collection's), runs until the cube rests in the container or
    the time is up, and leaves a video in --out; the report adds the success rate (--json: `success_rate`
    and a record per episode).
    """
    from evo1cli.deploy.replay import ReplayPolicy
    from evo1cli.deploy.rollout import INFERENCE, Execution
    from evo1cli.robots.session import load_robot
    from evo1cli.runtime.policy import open_policy

    if (seconds is not None and seconds <= 0) or (action_steps is not None and action_steps < 1) or episodes < 1:
        raise Evo1Error("--seconds must be > 0, --action-steps and --episodes >= 1", field="options")
    if inference not in INFERENCE or (replay is not None and inference != "sync"):
        raise Evo1Error(f"must be sync or async (a replay is sync), got {inference!r}", field="--inference")
    if blend < 0 or (lead is not None and lead < 0):
        raise Evo1Error("--blend and --lead must be >= 0", field="options")
    robot_config = load_robot(robot, str(config) if config else None, overrides, fake, sim, scene)
    twin_scene = None
    if sim:
        from evo1cli.sim.twin import open_scene

        twin_scene = open_scene(robot, robot_config.connection["sim"])
        task = task or twin_scene.instruction
    if not task:
        raise Evo1Error("give the instruction, e.g. --task 'Pick up the cube'", field="--task")
    policy = open_policy(checkpoint, server, replay, device=device, dtype=dtype, embodiment=embodiment,
                         dataset=dataset_key, token=token, episode=episode, robot=robot_config)  # fmt: skip
    try:
        replayed = policy if isinstance(policy, ReplayPolicy) else None  # one chunk of all its actions
        steps = len(replayed.actions) if replayed is not None else action_steps or robot_config.action_steps
        execution = Execution(steps, inference, blend, lead)
        start = replayed.start if replayed is not None else None
        max_ticks = steps if replayed is not None else None
        if twin_scene is not None:
            check_fits(policy, robot_config)
            seeds = [replayed.seed] if replayed is not None and replayed.seed is not None else None
            _on_twin(robot_config, twin_scene, policy, task, execution, dry_run, episodes, seed, seeds,
                     out, seconds or twin_scene.episode_s, max_ticks, as_json)  # fmt: skip
            return
        cadence, recorder = _roll_out(robot_config, policy, task, execution, home, start, dry_run, record,
                                      max_ticks=max_ticks, seconds=seconds or 60.0)  # fmt: skip
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


def check_fits(policy: Any, config: Any) -> None:
    """A checkpoint whose views or state dims differ from the robot's cameras and joints: one line, before
    anything moves."""
    meta = getattr(policy, "metadata", {})
    views = meta.get("model", {}).get("num_views") if isinstance(meta, dict) else None
    if views is not None and views < len(config.cameras):
        raise Evo1Error(
            f"the checkpoint takes {views} camera view(s), the {config.robot} has {len(config.cameras)}: "
            f"{', '.join(c.name for c in config.cameras)}",
            field="--checkpoint",
        )
    dims = set(meta.get("state_dims", {}).values()) if isinstance(meta, dict) else set()
    if dims and all(d < len(config.joints) for d in dims):
        raise Evo1Error(
            f"the checkpoint's state has {sorted(dims)} dims, the {config.robot} has {len(config.joints)} joints",
            field="--checkpoint",
        )


def _on_twin(
    config: Any,
    scene: Any,
    policy: Any,
    task: str,
    execution: Any,
    dry_run: bool,
    episodes: int,
    seed: int,
    seeds: list[int] | None,
    out: Path | None,
    seconds: float,
    max_ticks: int | None,
    as_json: bool,
) -> None:
    """K episodes on the twin: a success rate, a video each, report.json in `out`."""
    import json

    from evo1cli.deploy.episodes import report, run_twin_episodes, view_check
    from evo1cli.fileio import atomic_write_text
    from evo1cli.robots.session import RobotSession
    from evo1cli.sim.twin.scene import COLLECT_SEED_BLOCK

    out = out or Path("runs") / "deploy" / scene.name
    seeds = seeds or [COLLECT_SEED_BLOCK + seed + k for k in range(episodes)]

    def done(episode: Any) -> None:
        mark = "success" if episode.success else "failure"
        err_console.print(f"episode {episode.index + 1}/{len(seeds)} (seed {episode.seed}): {mark}, "
                          f"{episode.cadence.seconds:.1f} s")  # fmt: skip

    prints: dict[str, Any] = {}
    with RobotSession(config, dry_run=dry_run) as session:
        results = run_twin_episodes(session, policy, task, execution, seeds=seeds, episode_s=seconds,
                                    videos=out, max_ticks=max_ticks, done=done, prints=prints)  # fmt: skip
    trained = policy.trained_views() if hasattr(policy, "trained_views") else None
    views = view_check(trained, prints)
    summary = report(config.robot, scene.name, results, execution.inference, views) | {"dry_run": dry_run}
    atomic_write_text(out / "report.json", json.dumps(summary, indent=2) + "\n")
    if as_json:
        print_json(summary)
    else:
        last = results[-1].cadence.summary() | {"robot": config.robot, "dry_run": dry_run}
        print_cadence(last)
        console.print(f"{scene.name}: success {summary['success_rate']:.0%} over {len(results)} episode(s); "
                      f"videos and report.json in {out}")  # fmt: skip
    for line in summary["view_warnings"]:
        err_console.print(f"warning: {line}")
    ended = results[-1].cadence.ended if results else "done"
    if ended == "Ctrl-C":
        raise typer.Exit(130)
    if ended.startswith("safety stop"):
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
    sim: bool = typer.Option(False, "--sim", help=HELP["sim"]),
    scene: str | None = typer.Option(None, "--scene", help=HELP["scene"]),
) -> None:
    """Calibrate an SO-100 arm as LeRobot does; the file goes where LeRobot keeps its calibrations.

    1. Move the arm to the middle of its range and press Enter. 2. Move every joint through its whole
    range, then press Enter.

    Examples:

      evo1 calibrate so100

      evo1 calibrate so100 --leader --set connection.leader_port=/dev/ttyACM1

      evo1 calibrate so100 --sim      (the twin's file goes to a temporary directory, never over a real arm's)
    """
    if robot != "so100":
        raise Evo1Error("only the so100 is calibrated (the xArm6 controller knows its own joints)", field="robot")
    from evo1cli.robots.session import calibrate as run
    from evo1cli.robots.session import load_robot

    robot_config = load_robot(robot, str(config) if config else None, overrides, fake, sim, scene)
    path = run(robot_config, leader, say=console.print)
    console.print(f"wrote {path}")
