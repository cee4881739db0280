"""`evo1 collect --robot xarm6|so100` and `evo1 deploy`: the loops against the simulated arms (fakes at the
SDK / serial-port boundary) with rehearsal-video cameras decoded by OpenCV, a real checkpoint and a real server."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import Running
from fake_events import ScriptedKeys, commands

from evo1cli.collect.dataset import FrameSpec, open_dataset
from evo1cli.collect.teleop import HandGuiding, KeyboardJog, record_teleop
from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.types import STAGING_DIR
from evo1cli.data.validate import validate
from evo1cli.deploy.fakes import Circle, Delayed
from evo1cli.deploy.replay import load_replay
from evo1cli.deploy.rollout import Execution, check_chunk, run_rollout
from evo1cli.errors import Evo1Error
from evo1cli.model.checkpoint import save_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.robots.base import RobotError
from evo1cli.robots.session import RobotSession, load_robot
from evo1cli.runtime.policy import open_policy

SMALL = [f"cameras.{c}.{k}={v}" for c in ("image_1", "image_2") for k, v in (("width", 64), ("height", 48))]
SMALL_SO100 = [
    s.replace("cameras.image_1.", "cameras.front.").replace("cameras.image_2.", "cameras.wrist.") for s in SMALL
]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "cache"  # rehearsal videos, once per session
    monkeypatch.setenv("EVO1_CACHE", str(root))
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path_factory.getbasetemp() / "calibration"))
    return root


def xarm(*extra: str, watchdog: float = 0.5):
    return load_robot("xarm6", overrides=[*SMALL, f"watchdog_s={watchdog}", *extra], fake=True)


def blind_xarm(watchdog: float = 0.5):
    """The xArm without cameras: timing tests that must not depend on video decoding keeping up."""
    return dataclasses.replace(xarm(watchdog=watchdog), cameras=())


def servo_targets(session) -> np.ndarray:
    """Every joint target that reached the simulated xArm (6 joints) since connecting."""
    calls = commands(session.arm.api, "set_servo_angle_j")
    return np.array([c.arguments["angles"][:6] for c in calls if c.code == 0])


def stats(dof: int) -> StatsTable:
    table = StatsTable()
    unit = FeatureStats(-np.ones(dof), np.ones(dof))
    table.add("robot", "demo", NormStats(unit, unit))
    return table


def tiny_policy(dof: int) -> Evo1Model:
    config = Evo1Config.preset("tiny", image_size=32, horizon=8, num_inference_steps=2)
    return Evo1Model.build(config, stats=stats(dof)).eval()


def tiny_checkpoint(path, dof: int) -> str:
    save_policy(tiny_policy(dof), path)
    return str(path)


class Fn:
    """A function (images, state, prompt) -> chunk as a policy."""

    def __init__(self, fn):
        self.fn = fn

    def infer(self, queries):
        return [self.fn(list(q.images), np.asarray(q.state), q.prompt) for q in queries]


# ------------------------------------------------------------------------------------------ deploy loop
def test_hostile_policy_never_gets_past_the_safety_layer():
    rng = np.random.default_rng(0)
    kinds = ["nan", "huge", "jump", "inf", "fine"]

    def hostile(images, state, prompt):
        assert [im.shape for im in images] == [(48, 64, 3), (48, 64, 3)] and state.shape == (7,)
        kind = kinds[hostile.calls % len(kinds)]
        hostile.calls += 1
        time.sleep(0.005)  # a known inference time, which the cadence report must show
        chunk = state + rng.normal(0, 1, (10, 7))
        if kind == "nan":
            chunk[3:, 2] = np.nan
        elif kind == "huge":
            chunk *= 1e6
        elif kind == "jump":
            chunk[:, :6] += rng.choice([-300.0, 300.0], (10, 6))
        elif kind == "inf":
            chunk[:, 0] = -np.inf
        return chunk

    hostile.calls = 0
    config = xarm()
    lower, upper = np.array(config.limits.lower[:6]), np.array(config.limits.upper[:6])
    max_step = np.array(config.limits.max_step[:6])
    with RobotSession(config) as robot:
        start = robot.read_joints()[:6]
        cadence = run_rollout(robot, Fn(hostile), "wave", Execution(5), max_seconds=2.0)
        sent = servo_targets(robot)
    assert cadence.ended == "done" and cadence.queries == hostile.calls >= 5 and cadence.ticks >= 5 * 4
    assert len(sent) >= cadence.ticks - 1
    assert np.all(sent >= lower - 1e-9) and np.all(sent <= upper + 1e-9)
    steps = np.abs(np.diff(np.vstack([start, sent]), axis=0))
    assert np.all(steps <= max_step + 1e-9)  # never more than max_step per tick, whatever the policy said
    seen = cadence.interventions
    assert seen["nonfinite"] > 0 and seen["max_step"] > 0 and seen["joint_limit"] > 0
    summary = cadence.summary()
    assert summary["ticks"] == cadence.ticks and summary["safety_interventions"] == seen
    assert summary["achieved_hz"] > 0 and summary["infer"]["mean_ms"] >= 5.0  # the policy's 5 ms, measured


def test_dry_run_sends_nothing_but_checks_everything():
    turn = np.array([50.0, 0, 0, 0, 0, 0, 400])  # base +50 deg, gripper +400: far beyond one tick's step
    with RobotSession(xarm(), dry_run=True) as robot:
        cadence = run_rollout(robot, Fn(lambda im, s, p: np.tile(s + turn, (5, 1))), "wave", Execution(3),
                              max_seconds=0.6)  # fmt: skip
        assert len(servo_targets(robot)) == 0 and commands(robot.arm.api, "set_gripper_position") == []
    # what the arm would have got still walks 3 deg per tick towards +50: 16 ticks are rate-limited
    assert cadence.queries >= 2 and cadence.interventions == {"max_step": min(cadence.ticks, 16)}


def test_each_rollout_reports_only_its_own_safety_interventions():
    turn = np.array([50.0, 0, 0, 0, 0, 0, 0])  # 17 ticks of rate limiting, then the arm is there
    with RobotSession(xarm()) as robot:
        policy = Fn(lambda im, s, p: np.tile(s + turn, (5, 1)))
        first = run_rollout(robot, policy, "wave", Execution(3), max_seconds=0.3)
        second = run_rollout(robot, policy, "wave", Execution(3), max_seconds=0.3)
        total = robot.safety.counts["max_step"]
    assert first.interventions["max_step"] > 0 and second.interventions["max_step"] > 0
    assert first.interventions["max_step"] + second.interventions["max_step"] == total  # not counted twice


def test_a_stalled_policy_trips_the_watchdog_and_ends_the_loop():
    def stalls(images, state, prompt):
        time.sleep(0.8)
        return np.tile(state, (4, 1))

    with RobotSession(xarm(watchdog=0.2)) as robot:
        cadence = run_rollout(robot, Fn(stalls), "wave", Execution(4, infer_timeout_s=0.3), max_seconds=5.0)
        stops = commands(robot.arm.api, "set_state")
    assert cadence.ended == "safety stop: watchdog" and cadence.interventions["watchdog"] == 1
    assert any(c.arguments.get("state") == 4 for c in stops)  # the arm was stopped
    assert cadence.seconds < 2.0


def test_policy_with_too_few_action_dims_is_a_clear_error():
    assert check_chunk(np.zeros((5, 24)), 7).shape == (5, 7)  # padding dropped
    with pytest.raises(RobotError, match=r"shape \(5, 4\); this robot needs \(H, 7\)"):
        check_chunk(np.zeros((5, 4)), 7)


def test_deploy_through_evo1_serve(tmp_path):
    server = Running(tiny_policy(7))
    try:
        with RobotSession(xarm()) as robot:
            policy = open_policy(None, server.url, None)
            cadence = run_rollout(robot, policy, "wave", Execution(4), max_seconds=1.0)
            sent = servo_targets(robot)
    finally:
        server.stop()
    assert cadence.ended == "done" and cadence.queries >= 2 and len(sent) >= cadence.ticks - 1


# ------------------------------------------------------------------------------------------ asynchronous execution
@pytest.mark.slow
def test_async_keeps_the_rate_with_a_300_ms_policy_and_switches_without_a_jump():
    reports = {}
    for inference in ("sync", "async"):
        circle = Circle(np.zeros(7))
        with RobotSession(blind_xarm()) as robot:
            robot.safety.move_to(circle.start())
            before = len(servo_targets(robot))
            cadence = run_rollout(robot, Delayed(circle, 0.3), "wave", Execution(25, inference), max_seconds=3.0)
            sent = servo_targets(robot)[before:]
        assert cadence.ended == "done" and cadence.interventions == {}  # the circle never needs the safety layer
        assert np.abs(np.diff(sent, axis=0)).max() <= 3.0  # 2 deg per action (a switch: plus the arm's lag)
        reports[inference] = cadence.summary()
    sync, asynchronous = reports["sync"], reports["async"]
    # sync: the arm holds ~0.3 s every 25 ticks (about 22 Hz); async overlaps the queries with motion
    assert sync["waits"] == sync["queries"] and sync["achieved_hz"] < 26
    assert asynchronous["waits"] == 0 and asynchronous["inference_overlap"] > 0.8
    assert asynchronous["achieved_hz"] > sync["achieved_hz"] + 3
    assert asynchronous["skipped_actions"] >= 5 * (asynchronous["queries"] - 1)  # ~9 ticks in flight each
    assert 250 <= asynchronous["latency_estimate_ms"] < 1500 and asynchronous["lead"] >= 9
    # the new chunk picks up at the action for the tick it arrives at: about the same 2-deg step (2/3 of
    # max_step) as within a chunk; a chunk started at its first action would step back 9 ticks (18 deg)
    assert asynchronous["max_step_within_chunk"] == pytest.approx(2 / 3, abs=0.01)
    assert asynchronous["max_step_at_switch"] < 1.0


def test_async_hostile_policy_never_gets_past_the_safety_layer():
    rng = np.random.default_rng(1)

    def hostile(images, state, prompt):
        time.sleep(0.05)
        chunk = state + rng.normal(0, 50, (12, 7))
        chunk[rng.random((12, 7)) < 0.2] = rng.choice([np.nan, np.inf, -np.inf, 1e9])
        return chunk

    config = xarm()
    lower, upper = np.array(config.limits.lower[:6]), np.array(config.limits.upper[:6])
    with RobotSession(config) as robot:
        start = robot.read_joints()[:6]
        cadence = run_rollout(robot, Fn(hostile), "wave", Execution(6, "async"), max_seconds=1.5)
        sent = servo_targets(robot)
    assert cadence.ended == "done" and cadence.queries >= 3 and len(sent) >= cadence.ticks - 1
    assert np.all(sent >= lower - 1e-9) and np.all(sent <= upper + 1e-9)
    steps = np.abs(np.diff(np.vstack([start, sent]), axis=0))
    assert np.all(steps <= np.array(config.limits.max_step[:6]) + 1e-9)
    assert cadence.interventions["nonfinite"] > 0 and cadence.interventions["max_step"] > 0


@pytest.mark.parametrize("inference", ["sync", "async"])
def test_ctrl_c_ends_the_loop_within_a_tick_even_while_waiting_for_the_policy(inference):
    """The policy takes 5 s: Ctrl-C comes while the loop waits for it, and the loop does not wait on."""
    signalled = []

    def interrupt() -> None:
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    with RobotSession(blind_xarm(watchdog=0.2)) as robot:
        timer = threading.Timer(0.6, interrupt)
        timer.start()
        try:
            slow = Delayed(Circle(np.zeros(7)), 5.0)
            cadence = run_rollout(robot, slow, "wave", Execution(25, inference), max_seconds=20.0)
        finally:
            timer.cancel()
        ended = time.monotonic()
        stops = commands(robot.arm.api, "set_state")
    assert cadence.ended == "Ctrl-C" and signalled
    assert ended - signalled[0] < 0.5  # one tick is 33 ms; waiting for the policy would take 4.4 s more
    assert any(c.arguments.get("state") == 4 for c in stops)  # and the arm was stopped at once


def test_a_recorded_episode_replays_through_the_safety_layer(tmp_path):
    config = xarm()
    writer = open_dataset(tmp_path / "ds", FrameSpec.of_robot(config))
    with RobotSession(config) as robot:
        record_teleop(robot, HandGuiding(robot.arm), writer, "wave", 1, episode_s=0.6, reset_s=0)
    table = read_episode(load_meta(tmp_path / "ds"), 0)
    replay = load_replay(str(tmp_path / "ds"), 0, config)
    np.testing.assert_allclose(replay.actions, table.action) and np.testing.assert_allclose(
        replay.start, table.state[0]
    )
    with RobotSession(config) as robot:
        robot.safety.move_to(replay.start)
        before = len(servo_targets(robot))
        n = len(replay.actions)
        cadence = run_rollout(robot, replay, "wave", Execution(n), max_seconds=30.0, max_ticks=n)
        sent = servo_targets(robot)[before:]
    assert cadence.ended == "done" and cadence.ticks == n and cadence.queries == 1
    np.testing.assert_allclose(sent, table.action[:, :6], atol=1e-6)  # the recorded actions, as they were
    with pytest.raises(Evo1Error, match=r"--episode: the dataset has episodes 0\.\.0"):
        load_replay(str(tmp_path / "ds"), 3, config)
    with pytest.raises(Evo1Error, match="fps: recorded at 30 fps but the robot runs at 20 Hz"):
        load_replay(str(tmp_path / "ds"), 0, xarm("control_hz=20"))


# ------------------------------------------------------------------------------------------ teleoperation
def test_hand_guided_actions_are_the_next_measured_pose(tmp_path):
    config = xarm()
    writer = open_dataset(tmp_path / "ds", FrameSpec.of_robot(config))
    with RobotSession(config) as robot:
        summary = record_teleop(robot, HandGuiding(robot.arm), writer, "wave", 1, episode_s=0.8, reset_s=0)
    assert summary.kept == 1 and not summary.interrupted
    meta = load_meta(tmp_path / "ds")
    table = read_episode(meta, 0)
    np.testing.assert_allclose(table.action[:-1], table.state[1:])  # action t = pose t + 1
    np.testing.assert_allclose(table.action[-1], table.state[-1])
    assert np.ptp(table.state[:, :6], axis=0).max() > 0.5  # the simulated hand moved the arm
    assert meta.fps == 30 and meta.info["robot_type"] == "xarm6" and meta.episodes[0].extra["source"] == "hand-guiding"


def test_g_closes_the_gripper_by_command_and_the_action_is_what_was_sent(tmp_path):
    """Hand-guiding: a hand cannot move the motor-driven gripper. `g` commands it (through the safety layer, at
    most max_step per tick) and the action records the command, not the measured opening."""
    config = xarm()
    writer = open_dataset(tmp_path / "ds", FrameSpec.of_robot(config))
    keys = ScriptedKeys({3: "g", 25: "s"})
    with RobotSession(config) as robot:
        summary = record_teleop(robot, HandGuiding(robot.arm), writer, "grasp", 1, 10.0, 0.0, keys)
        sent = [c.arguments["pos"] for c in commands(robot.arm.api, "set_gripper_position")]
    assert summary.kept == 1
    table = read_episode(load_meta(tmp_path / "ds"), 0)
    gripper, step = table.action[:, 6], config.limits.max_step[6]
    np.testing.assert_allclose(gripper[:2], table.state[1:3, 6])  # before `g`: the opening reached next
    goal = 850.0 if table.state[2, 6] < 425 else 0.0  # `g` drives it to the other end of its range
    moves = np.diff(gripper[2:])
    assert gripper[-1] == goal and np.all(np.abs(moves) <= step + 1e-9) and np.all(moves * (goal - 425) >= 0)
    assert sent and sent[-1] == goal  # what was recorded is what reached the gripper
    np.testing.assert_allclose(table.action[:-1, :6], table.state[1:, :6])  # the arm: the next measured pose


def test_an_idle_pause_does_not_arm_a_watchdog_that_no_command_armed(tmp_path):
    """Teach mode sends nothing, so the watchdog is disarmed; saving an episode (an idle pause) must not arm
    it, or the next episode is stopped half a second later."""
    with RobotSession(blind_xarm(watchdog=0.2)) as robot:
        with robot.safety.idle(None):
            pass
        time.sleep(0.5)
        assert robot.safety.stopped is None
        robot.safety.command(robot.safety.last_command)  # a command arms it ...
        with robot.safety.idle(None):
            pass
        time.sleep(0.5)
        assert robot.safety.stopped == "watchdog"  # ... and after the pause it watches again


def test_keys_discard_record_again_and_quit(tmp_path):
    config = xarm()
    writer = open_dataset(tmp_path / "ds", FrameSpec.of_robot(config))
    # recording ticks: 5 -> d (discard), 10 -> r (discard, again at once), 15 -> s (save), 20 -> q (save, quit)
    keys = ScriptedKeys({5: "d", 10: "r", 15: "s", 20: "q"})
    with RobotSession(config) as robot:
        summary = record_teleop(robot, HandGuiding(robot.arm), writer, "wave", 5, 10.0, 0.0, keys)
    assert (summary.kept, summary.discarded) == (2, 2)
    meta = load_meta(tmp_path / "ds")
    assert len(meta.episodes) == 2 and not (tmp_path / "ds" / STAGING_DIR).exists()
    assert validate(tmp_path / "ds")[1].errors == []


# ------------------------------------------------------------------------------------------ the commands
def run_cli(*args: str, cache, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVO1_CACHE": str(cache), "HF_LEROBOT_CALIBRATION": str(cache / "calibration")}
    return subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


def sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def test_collect_so100_by_leader_arm_writes_a_valid_dataset(tmp_path, cache):
    out = tmp_path / "so100"
    result = run_cli("collect", "--robot", "so100", "--fake", "--task", "Pick up the cube", "--episodes", "2",
                     "--episode-time", "1", "--reset-time", "0", "--out", str(out), "--json", *sets(SMALL_SO100),
                     cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["kept"] == 2
    meta, problems = validate(out, decode=True)
    assert problems.errors == [] and meta is not None and len(meta.episodes) == 2
    assert meta.features["observation.state"]["names"][-1] == "gripper"
    assert set(meta.video_keys) == {"observation.images.front", "observation.images.wrist"}
    table = read_episode(meta, 1)
    assert 20 <= len(table.state) <= 31 and table.state.shape[1] == table.action.shape[1] == 6
    assert np.ptp(table.action, axis=0).max() > 1  # the leader moved
    # the follower follows the leader (a tick or two behind, and no faster than max_step allows)
    assert np.abs(table.state[-1] - table.action[-4]).max() < np.abs(table.action[-1] - table.action[0]).max() + 12
    assert meta.tasks == {0: "Pick up the cube"}


def test_collect_xarm6_by_hand_guiding(tmp_path, cache):
    out = tmp_path / "xarm"
    result = run_cli("collect", "--robot", "xarm6", "--fake", "--task", "wave", "--episodes", "1", "--episode-time",
                     "1", "--reset-time", "0", "--out", str(out), *sets(SMALL), cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    meta, problems = validate(out)
    assert problems.errors == [] and len(meta.episodes) == 1 and meta.features["action"]["shape"] == [7]


def test_deploy_command_with_a_checkpoint_records_and_reports(tmp_path, cache):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", 6)
    result = run_cli("deploy", "so100", "--fake", "-c", ckpt, "--task", "Pick up the cube", "--seconds", "1.5",
                     "--record", str(tmp_path / "rollout"), "--json", *sets(SMALL_SO100), cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ended"] == "done" and report["target_hz"] == 30 and report["action_steps"] == 35
    assert report["ticks"] > 10 and report["queries"] >= 1 and set(report) >= {"observe", "infer", "act"}
    meta, problems = validate(tmp_path / "rollout")
    assert problems.errors == [] and len(meta.episodes) == 1 and meta.episodes[0].length == report["ticks"]


def test_deploy_stops_on_ctrl_c_and_keeps_the_recording(tmp_path, cache):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", 7)
    env = {**os.environ, "EVO1_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "evo1cli", "deploy", "xarm6", "--fake", "-c", ckpt, "--task", "wave",
           "--seconds", "60", "--record", str(tmp_path / "rollout"), *sets(SMALL)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    first_frame = tmp_path / "rollout" / STAGING_DIR / "episode_000000" / "observation.images.image_1.mp4"
    while not first_frame.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # frames are being recorded: the loop runs
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Ctrl-C" in out
    meta, problems = validate(tmp_path / "rollout")
    assert problems.errors == [] and len(meta.episodes) == 1


def test_bad_robot_config_and_options_are_one_line_errors(tmp_path, cache):
    bad = run_cli(
        "deploy", "so100", "--fake", "--task", "t", "-c", str(tmp_path), "--set", "control_hz=-1", cache=cache
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "control_hz" in bad.stderr
    both = run_cli("deploy", "xarm6", "--fake", "--task", "t", cache=cache)
    assert both.returncode == 1 and "--checkpoint" in both.stderr and "Traceback" not in both.stderr
    no_task = run_cli("collect", "--robot", "so100", "--fake", "--out", str(tmp_path / "d"), cache=cache)
    assert no_task.returncode == 1 and "--task" in no_task.stderr and not (tmp_path / "d").exists()


def test_calibrate_so100_writes_lerobots_file(tmp_path, cache):
    result = run_cli("calibrate", "so100", "--fake", cache=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    path = result.stdout.strip().split()[-1]
    with open(path) as f:
        calibration = json.load(f)
    assert next(iter(calibration)) == "shoulder_pan"
    assert set(calibration["gripper"]) == {"id", "drive_mode", "homing_offset", "range_min", "range_max"}


def test_keyboard_jog_moves_the_picked_joint_through_the_safety_layer(tmp_path):
    config = xarm()
    writer = open_dataset(tmp_path / "ds", FrameSpec.of_robot(config))
    steps = np.array(config.limits.max_step) / 2  # 1.5 deg per press
    # tick 1: pick joint 2; ticks 2-5: four presses of +; tick 6: one -; tick 9: save and quit
    keys = ScriptedKeys({1: "2", 2: "+", 3: "=", 4: "+", 5: "+", 6: "-", 9: "q"})
    with RobotSession(config) as robot:
        start = robot.safety.last_command
        summary = record_teleop(robot, KeyboardJog(steps), writer, "jog", 1, 10.0, 0.0, keys)
        sent = servo_targets(robot)
    assert summary.kept == 1
    table = read_episode(load_meta(tmp_path / "ds"), 0)
    expected = start[1] + steps[1] * np.array([0, 1, 2, 3, 4, 3, 3, 3, 3])
    np.testing.assert_allclose(table.action[:, 1], expected)
    np.testing.assert_allclose(table.action[:, [0, 2, 3, 4, 5]], np.tile(start[[0, 2, 3, 4, 5]], (9, 1)))
    np.testing.assert_allclose(sent[-1], table.action[-1, :6])  # what was recorded is what was sent


def test_teleop_choices_are_checked(tmp_path, cache):
    wrong = run_cli("collect", "--robot", "so100", "--fake", "--task", "t", "--teleop", "hand", "--out",
                    str(tmp_path / "d"), cache=cache)  # fmt: skip
    assert (
        wrong.returncode == 1
        and "--teleop: so100 teleoperation is one of leader, keyboard, scripted, got 'hand'" in wrong.stderr
    )
    assert not (tmp_path / "d").exists()
    no_display = run_cli("collect", "--robot", "xarm6", "--fake", "--task", "t", "--view", "--out",
                         str(tmp_path / "d"), *sets(SMALL), cache=cache)  # fmt: skip
    if not os.environ.get("DISPLAY"):
        assert no_display.returncode == 1 and "--view needs a display" in no_display.stderr


def test_deploy_command_through_evo1_serve(tmp_path, cache):
    server = Running(tiny_policy(6))
    try:
        args = ["--server", server.url, "--task", "Pick up the cube", "--seconds", "1.5", "--action-steps", "5"]
        result = run_cli("deploy", "so100", "--fake", *args, "--json", *sets(SMALL_SO100), cache=cache)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ended"] == "done" and report["action_steps"] == 5 and report["queries"] >= 2


def test_deploy_async_and_replay_from_the_command_line(tmp_path, cache):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", 6)
    result = run_cli("deploy", "so100", "--fake", "-c", ckpt, "--task", "Pick up the cube", "--seconds", "2",
                     "--inference", "async", "--record", str(tmp_path / "rollout"), "--json", *sets(SMALL_SO100),
                     cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.startswith("device cpu, ")  # the banner: what was chosen and why
    report = json.loads(result.stdout)
    assert report["inference"] == "async" and report["ended"] == "done" and report["queries"] >= 2
    assert report["latency_estimate_ms"] > 0 and report["inference_overlap"] > 0
    replayed = run_cli("deploy", "so100", "--fake", "--replay", str(tmp_path / "rollout"), "--task", "replay",
                       "--json", *sets(SMALL_SO100), cache=cache)  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    again = json.loads(replayed.stdout)
    assert again["ended"] == "done" and again["ticks"] == report["ticks"] and again["queries"] == 1


def test_an_unreachable_server_is_one_line(tmp_path, cache):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("deploy", "so100", "--fake", "--server", f"ws://127.0.0.1:{port}", "--task", "t",
                     *sets(SMALL_SO100), cache=cache)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: connection: cannot reach ws://127.0.0.1:{port} after 4 attempts")
