"""Robot configuration files and the safety layer, against the xArm6 driver over the simulated SDK."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from fake_events import commands, inject_error

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import RobotError
from evo1cli.robots.config import default_config_path, load_robot_config
from evo1cli.robots.fakes.xarm import FakeXArmAPI, xarm6_forward_kinematics
from evo1cli.robots.safety import KINDS, SafetyLayer
from evo1cli.robots.session import make_arm
from evo1cli.robots.xarm6 import XArm6

XARM = default_config_path("xarm6")
TICK = 1 / 30


def xarm_config(*overrides: str):
    return load_robot_config(XARM, ["connection.fake=true", *overrides])


@pytest.fixture
def homed():
    """A factory: an XArm6 on the simulated SDK, connected and homed, for a config with `overrides`."""
    arms = []

    def make(*overrides: str) -> XArm6:
        arm = make_arm(xarm_config(*overrides))
        arm.connect()
        arm.home()
        arms.append(arm)
        return arm

    yield make
    for arm in arms:
        arm.disconnect()


# ---------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "robot, dof, steps, cameras", [("xarm6", 7, 25, ("image_1", "image_2")), ("so100", 6, 35, ("front", "wrist"))]
)
def test_default_configs_load(robot, dof, steps, cameras):
    path = default_config_path(robot)
    config = load_robot_config(path, robot=robot)
    assert config.robot == robot and len(config.joints) == dof and config.joints[-1] == "gripper"
    assert config.source == str(path)
    assert config.action_steps == steps and config.control_hz == 30 and config.watchdog_s == 0.5
    assert tuple(c.name for c in config.cameras) == cameras
    assert all((c.width, c.height, c.fps) == (640, 480, 30) for c in config.cameras)
    lower, upper = np.array(config.limits.lower), np.array(config.limits.upper)
    assert np.all(lower < upper) and np.all((lower <= config.home) & (config.home <= upper))
    assert config.connection["fake"] is False  # the shipped files drive real hardware


def test_xarm6_defaults_match_the_hardware():
    config = load_robot_config(XARM)
    assert config.connection["ip"] == "192.168.1.222"
    assert config.limits.lower[1:3] == (-117, -219) and config.limits.upper[1:3] == (116, 10)  # j2, j3
    assert config.limits.upper[6] == 850
    # 3 deg per tick at 30 Hz is 90 deg/s: half the xArm's 180 deg/s joint speed.
    assert config.limits.max_step[:6] == (3,) * 6 and 3 * config.control_hz == 90
    home_xyz = xarm6_forward_kinematics(config.home[:6])[:3]
    assert np.all(np.array(config.limits.workspace_lower) < home_xyz)
    assert np.all(home_xyz < np.array(config.limits.workspace_upper))


def test_overrides_reach_every_section():
    config = xarm_config(
        "connection.ip=10.0.0.2", "cameras.image_2.device=/dev/video4", "control_hz=15", "cameras.image_1=null"
    )
    assert config.connection["ip"] == "10.0.0.2" and config.control_hz == 15
    assert [(c.name, c.device) for c in config.cameras] == [("image_2", "/dev/video4")]  # null drops a camera


@pytest.mark.parametrize(
    "override, field, words",
    [
        ("limits.lower=[0, 0]", "limits.lower", "list of 7 numbers"),
        ("limits.upper=[270, 116, 10, 270, 180, 270, -5]", "limits.upper[6]", "greater than lower"),
        ("limits.upper=[270, 150, 10, 270, 180, 270, 850]", "limits.upper[1]", "beyond what the xarm6 can reach"),
        ("limits.max_step=[3, 3, 3, 3, 3, 0, 50]", "limits.max_step[5]", "> 0"),
        ("limits.max_step=[3, 3, 3, 3, nan, 3, 50]", "limits.max_step[4]", "finite number"),
        ("limits.workspace_upper=null", "limits.workspace_upper", "both"),
        ("home=[0, 130, -40, 0, 60, 0, 850]", "home[1]", "outside limits"),
        ("control_hz=0", "control_hz", "> 0"),
        ("control_hz=fast", "control_hz", "number"),
        ("action_steps=2.5", "action_steps", "integer"),
        ("watchdog_s=0.01", "watchdog_s", "two control ticks"),
        ("robot=ur5", "robot", "unknown robot"),
        ("joints=[a, b]", "joints", "7 joint names"),
        ("joints=[j1, j1, j3, j4, j5, j6, gripper]", "joints[1]", "duplicate"),
        ("connection.fkae=true", "connection.fkae", "unknown key"),
        ("connection.ip=null", "connection.ip", "required"),
        ("connection.home_speed=500", "connection.home_speed", "(0, 180]"),
        ("cameras.image_1.fps=-1", "cameras.image_1.fps", ">= 1"),
        ("cameras.image_1.device=null", "cameras.image_1.device", "index"),
        ("bogus=1", "bogus", "unknown key"),
    ],
)
def test_bad_configs_name_file_and_field(override, field, words):
    with pytest.raises(Evo1Error) as info:
        load_robot_config(XARM, [override])
    message = str(info.value)
    assert info.value.field == field and info.value.path == str(XARM)
    assert message.startswith(f"{XARM}: {field}: ") and words in message and "\n" not in message


def test_unreadable_files(tmp_path):
    with pytest.raises(Evo1Error, match="not found"):
        load_robot_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("robot: xarm6\njoints: [a,\n")
    with pytest.raises(Evo1Error, match=r"broken.yaml: not valid YAML at line \d"):
        load_robot_config(tmp_path / "broken.yaml")
    with pytest.raises(Evo1Error, match=r"so100.yaml: robot: this file configures 'so100', not 'xarm6'"):
        load_robot_config(default_config_path("so100"), robot="xarm6")


# ---------------------------------------------------------------------------------------------- safety layer
def hostile_commands(home: np.ndarray, ticks: int, seed: int = 0) -> list:
    """Everything a broken policy might emit: drifts, jumps, NaN, inf, huge values, wrong lengths, garbage."""
    rng = np.random.default_rng(seed)
    garbage = [None, "j1", {"a": 1}, [[1, 2], [3]], [], 3.0, np.zeros((7, 1)), [1.0] * 6, [1.0] * 8]
    out: list = []
    for _ in range(ticks):
        roll = rng.random()
        command = home + rng.normal(0, 2, 7) * [1, 1, 1, 1, 1, 1, 30]
        if roll < 0.1:
            command[rng.integers(7)] = rng.choice([np.nan, np.inf, -np.inf])
        elif roll < 0.2:
            command = garbage[rng.integers(len(garbage))]
        elif roll < 0.35:
            command = rng.uniform(-1e9, 1e9, 7)
        elif roll < 0.55:
            command = home + rng.uniform(-200, 200, 7) * [1, 1, 1, 1, 1, 1, 5]  # sudden jumps
        out.append(command)
    return out


def test_hostile_policy_never_reaches_the_arm(homed):
    # No workspace box (its holds would make the counts depend on kinematics); a watchdog that a loaded CI
    # machine cannot trip mid-run (its own test is below).
    arm = homed("limits.workspace_lower=null", "limits.workspace_upper=null", "watchdog_s=60")
    fake, limits = arm.api, arm.config.limits
    lower, upper, max_step = (np.array(v) for v in (limits.lower, limits.upper, limits.max_step))
    safety = SafetyLayer(arm, arm.config)
    start = safety.start()
    hostile = hostile_commands(start, 1000)
    sent = [safety.command(c) for c in hostile]
    safety.close()

    # What reached the (simulated) controller: every joint target and gripper target, in order.
    joints = np.array([c.arguments["angles"] for c in commands(fake, "set_servo_angle_j")])
    grippers = np.array([start[6]] + [c.arguments["pos"] for c in commands(fake, "set_gripper_position")[1:]])
    assert len(joints) == 1000 and all(c.code == 0 for c in fake.calls)
    assert np.all((lower[:6] <= joints) & (joints <= upper[:6]))
    assert np.all(np.abs(np.diff(np.vstack([start[:6], joints]), axis=0)) <= max_step[:6] + 1e-9)
    assert np.all((lower[6] <= grippers) & (grippers <= upper[6]))
    assert np.all(np.abs(np.diff(grippers)) <= max_step[6] + 1e-9)
    np.testing.assert_allclose(joints, np.array(sent)[:, :6])

    # Counts, from an independent reading of the inputs: a hold re-sends the previous command unchanged.
    expected = dict.fromkeys(KINDS, 0)
    last = start
    for command, out in zip(hostile, sent, strict=True):
        array = np.asarray(command, dtype=float) if _numeric(command) else None
        if array is None or array.shape != (7,):
            expected["shape"] += 1
            np.testing.assert_array_equal(out, last)
        elif not np.all(np.isfinite(array)):
            expected["nonfinite"] += 1
            np.testing.assert_array_equal(out, last)
        else:
            expected["joint_limit"] += bool(np.any((array < lower) | (array > upper)))
            expected["max_step"] += bool(np.any(np.abs(np.clip(array, lower, upper) - last) > max_step))
        last = out
    assert safety.counts == expected
    assert min(expected["shape"], expected["nonfinite"], expected["joint_limit"], expected["max_step"]) > 50
    assert sum(e.kind == "shape" for e in safety.events) == expected["shape"]


def _numeric(value) -> bool:
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def test_clamp_events_record_requested_and_sent(homed):
    arm = homed()
    safety = SafetyLayer(arm, arm.config)
    home = safety.start()
    out = safety.command(home + np.array([0, 500, 0, 0, 0, 1, 0]))  # j2 far past its limit, j6 a legal step
    np.testing.assert_array_equal(out, home + np.array([0, 3, 0, 0, 0, 1, 0]))
    events = [(e.kind, e.joint, e.requested, e.sent) for e in safety.events]
    assert events == [("joint_limit", "j2", 480.0, -17.0), ("max_step", "j2", 480.0, -17.0)]
    assert safety.counts["joint_limit"] == safety.counts["max_step"] == 1
    safety.close()


def test_workspace_box_holds_commands_that_leave_it(homed):
    arm = homed("limits.workspace_upper=[700, 500, 450]")  # home's flange is at z = 351.5
    safety = SafetyLayer(arm, arm.config)
    home = safety.start()
    lift = np.array([0, -3, -3, 0, 0, 0, 0])  # j2 back, j3 up, at the step limit
    for _ in range(30):
        safety.command(safety.last_command + lift)
    safety.close()
    targets = [c.arguments["angles"] for c in commands(arm.api, "set_servo_angle_j")]
    heights = [xarm6_forward_kinematics(t)[2] for t in targets]
    assert max(heights) <= 450 and heights[-1] > 430
    assert safety.counts["workspace"] > 10 and targets[-1] == targets[-2]  # held at the last pose inside
    assert targets[0] == list(home[:6] + lift[:6])


def test_watchdog_stops_a_stalled_loop_within_a_tick(homed):
    arm = homed("watchdog_s=0.2")
    fake = arm.api
    safety = SafetyLayer(arm, arm.config)
    home = safety.start()
    time.sleep(0.3)  # before the first command the watchdog is not armed
    assert safety.stopped is None and fake.state != 4
    for _ in range(5):
        safety.command(home)
        time.sleep(TICK)
    deadline = time.monotonic() + 2
    while safety.stopped is None and time.monotonic() < deadline:
        time.sleep(0.005)
    stop = commands(fake, "set_state")[-1]
    last_command = commands(fake, "set_servo_angle_j")[-1]
    assert stop.arguments == {"state": 4} and fake.state == 4
    assert 0.2 - 0.005 <= stop.time - last_command.time <= 0.2 + TICK  # measured from arrival, logged after
    assert safety.stopped == "watchdog" and safety.counts["watchdog"] == 1

    assert safety.command(home) is None  # latched: nothing reaches the arm
    assert commands(fake, "set_servo_angle_j")[-1] is last_command
    np.testing.assert_allclose(safety.resume(), home)
    assert fake.mode == 1 and fake.state != 4 and safety.command(home) is not None

    with safety.idle(timeout_s=None):  # a slow policy query: no stop however long it takes
        time.sleep(0.3)
    assert safety.stopped is None and safety.counts["watchdog"] == 1
    safety.close()


def test_ctrl_c_stops_the_arm_inside_the_handler(homed):
    arm = homed()
    fake = arm.api
    safety = SafetyLayer(arm, arm.config)
    home = safety.start()
    safety.command(home)
    before = signal.getsignal(signal.SIGINT)
    with safety.handle_sigint():
        signal.raise_signal(signal.SIGINT)
        assert fake.calls[-1].method == "set_state" and fake.calls[-1].arguments == {"state": 4}
        assert fake.state == 4 and safety.stop_requested and safety.stopped == "Ctrl-C"
        assert safety.command(home) is None
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    safety.close()


def test_ctrl_c_during_an_arm_call_stops_right_after_it(homed):
    class Interrupted(XArm6):
        def send_joints(self, target):
            super().send_joints(target)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C lands while the SDK call is still on the stack

    arm = Interrupted(xarm_config(), api_factory=FakeXArmAPI)
    arm.connect()
    fake = arm.api
    safety = SafetyLayer(arm, arm.config)
    start = safety.start()
    with safety.handle_sigint():
        safety.command(start)
        assert [c.method for c in fake.calls[-3:]] == ["set_servo_angle_j", "set_gripper_position", "set_state"]
        assert fake.state == 4 and safety.stop_requested and safety.command(start) is None
    safety.close()
    arm.disconnect()


def test_arm_errors_latch_a_stop(homed):
    arm = homed()
    safety = SafetyLayer(arm, arm.config)
    home = safety.start()
    inject_error(arm.api, 31)
    with pytest.raises(RobotError, match="collision"):
        safety.command(home)
    assert safety.stopped.startswith("arm error") and safety.command(home) is None
    with pytest.raises(RobotError, match="cannot resume: C31 collision"):
        safety.resume()
    safety.close()


def test_start_refuses_an_arm_far_outside_the_limits():
    arm = make_arm(xarm_config("limits.upper=[270, 116, -10, 270, 180, 270, 850]"))
    arm.connect()  # the fake starts at all-zero joints: j3 = 0 is 10 deg above the upper limit
    with pytest.raises(RobotError, match=r"j3 is at 0, outside its limits \[-219, -10\]"):
        SafetyLayer(arm).start()
    arm.disconnect()


def test_move_to_streams_small_steps_to_the_goal():
    arm = make_arm(xarm_config("watchdog_s=60"))
    arm.connect()
    safety = SafetyLayer(arm)
    start = safety.start()
    safety.move_to(arm.config.home, max_step_scale=1.0)
    safety.close()
    targets = np.array([c.arguments["angles"] for c in commands(arm.api, "set_servo_angle_j")])
    np.testing.assert_allclose(targets[-1], arm.config.home[:6])
    assert np.all(np.abs(np.diff(np.vstack([start[:6], targets]), axis=0)) <= 3 + 1e-9)
    assert len(targets) == 20  # j5's 60 degrees at 3 per tick
    assert commands(arm.api, "set_gripper_position")[-1].arguments["pos"] == 850
    arm.disconnect()
