"""The xArm6 driver against the simulated SDK: connect sequence, modes, homing, streaming, errors, teach mode."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
from fake_events import commands, inject_error, inject_gripper_error

from evo1cli.robots.base import RobotError
from evo1cli.robots.config import default_config_path, load_robot_config
from evo1cli.robots.fakes.xarm import FakeXArmAPI
from evo1cli.robots.xarm6 import XArm6

CONFIG = load_robot_config(default_config_path("xarm6"), ["connection.fake=true"])
HOME = np.array(CONFIG.home)


class Clock:
    """Simulated seconds, advanced by the test: the fake's motion is then exact and instant to test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_arm(clock: Clock | None = None, before_connect=None, **fake_kwargs) -> XArm6:
    """An XArm6 over a FakeXArmAPI; `before_connect(fake)` prepares the controller (e.g. an error)."""

    def factory(ip, **kwargs):
        fake = FakeXArmAPI(ip, **kwargs, **fake_kwargs, **({"clock": clock} if clock else {}))
        if before_connect:
            before_connect(fake)
        return fake

    return XArm6(CONFIG, api_factory=factory)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def arm(clock):
    arm = make_arm(clock)
    arm.connect()
    yield arm
    arm.disconnect()


def test_connect_enables_and_enters_servo_mode_without_moving(arm):
    fake = arm.api
    assert [(c.method, *c.arguments.values()) for c in fake.calls] == [
        ("motion_enable", True),
        ("set_gripper_mode", 0),
        ("set_gripper_enable", True),
        ("set_gripper_speed", 5000),
        ("set_mode", 1),
        ("set_state", 0),
    ]
    assert fake.mode == 1 and fake.state == 2 and fake.error_code == 0
    np.testing.assert_array_equal(arm.read_joints(), np.zeros(7))
    arm.connect()  # already connected: nothing more is sent
    assert len(fake.calls) == 6


def test_connect_clears_a_recoverable_error_but_not_an_emergency_stop(clock):
    arm = make_arm(clock, before_connect=lambda fake: inject_error(fake, 31))
    arm.connect()
    assert arm.api.calls[0].method == "clean_error" and arm.api.state == 2
    arm.disconnect()

    fakes = []
    arm = make_arm(clock, before_connect=lambda fake: (inject_error(fake, 1), fakes.append(fake)))
    with pytest.raises(RobotError, match=r"C1 emergency stop .*release it, then reconnect") as info:
        arm.connect()
    assert info.value.code == 1 and arm.api is None and not fakes[0].connected  # closed again


def test_connection_failures_are_robot_errors(monkeypatch):
    unreachable = XArm6(CONFIG, api_factory=functools.partial(FakeXArmAPI, reachable=False))
    with pytest.raises(RobotError, match=r"cannot connect to the xArm at 192\.168\.1\.222: connect socket failed"):
        unreachable.connect()
    real = XArm6(load_robot_config(default_config_path("xarm6")))
    monkeypatch.setitem(sys.modules, "xarm.wrapper", None)  # the SDK is not installed
    with pytest.raises(RobotError, match="pip install xarm-python-sdk"):
        real.connect()


def test_home_is_one_planned_move_then_servo_mode(arm, clock):
    start = clock()
    arm.home()
    fake = arm.api
    (move,) = commands(fake, "set_servo_angle")
    assert move.arguments == {"angle": list(HOME[:6]), "speed": 30, "is_radian": False, "wait": True}
    assert move.time - start == pytest.approx(60 / 30)  # j5's 60 degrees at 30 deg/s, waited for
    np.testing.assert_allclose(arm.read_joints(), HOME)
    modes = [c.arguments["mode"] for c in commands(fake, "set_mode")]
    assert modes == [1, 0, 1] and fake.mode == 1


def test_streamed_targets_follow_at_the_joint_speed_limit(arm, clock):
    target = np.array([20, -10, -5, 0, 10, 0, 400.0])
    arm.send_joints(target)
    (servo,) = commands(arm.api, "set_servo_angle_j")
    assert servo.arguments == {"angles": list(target[:6]), "is_radian": False}
    clock.now += 0.1  # 180 deg/s: 18 degrees in 0.1 s
    np.testing.assert_allclose(arm.read_joints()[:6], [18, -10, -5, 0, 10, 0])
    clock.now += 1.0
    np.testing.assert_allclose(arm.read_joints(), target)
    arm.send_joints(target + np.array([1, 0, 0, 0, 0, 0, 0.2]))  # gripper change below its deadband
    assert [c.arguments["pos"] for c in commands(arm.api, "set_gripper_position")] == [400]


def test_stop_and_resume(arm, clock):
    arm.stop()
    assert arm.api.state == 4
    with pytest.raises(RobotError, match=r"set_servo_angle_j failed \(code 9: not ready to move"):
        arm.send_joints(np.zeros(7))
    arm.resume()
    arm.send_joints(np.array([5, 0, 0, 0, 0, 0, 0.0]))
    clock.now += 1
    assert arm.read_joints()[0] == 5


@pytest.mark.parametrize(
    "code, words",
    [(31, "C31 collision"), (2, "C2 emergency stop"), (23, "C23 joint limit"), (22, "C22 self-collision")],
)
def test_controller_errors_are_named_plainly(arm, code, words):
    inject_error(arm.api, code)
    with pytest.raises(RobotError, match=rf"set_servo_angle_j failed \(code 1: the controller has an error\): {words}"):
        arm.send_joints(np.zeros(7))
    with pytest.raises(RobotError, match=words) as info:
        arm.read_joints()
    assert info.value.code == code
    with pytest.raises(RobotError, match=words):
        arm.resume()


def test_sdk_range_check_and_gripper_fault(arm):
    with pytest.raises(RobotError, match="code -8: target outside the joint range"):
        arm.send_joints(np.array([0, 150, 0, 0, 0, 0, 0.0]))  # past j2's 120 degrees: the SDK refuses
    inject_gripper_error(arm.api, 11)
    with pytest.raises(RobotError, match=r"get_gripper_position failed .*the gripper has a fault"):
        arm.read_joints()


def test_wrong_mode_commands_are_ignored_by_the_controller(arm, clock):
    fake = arm.api
    fake.set_mode(0)
    fake.set_state(0)
    arm.send_joints(np.array([30, 0, 0, 0, 0, 0, 0.0]))  # code 0, as the SDK returns, but nothing moves
    clock.now += 1
    assert commands(fake, "set_servo_angle_j")[-1].accepted is False and arm.read_joints()[0] == 0


def test_teach_mode_records_a_hand_guided_motion(arm, clock):
    fake = arm.api
    path = np.array([[0, 0, 0, 0, 0, 0], [30, -20, -30, 0, 40, 10], [60, -10, -60, 5, 80, 20]], dtype=float)
    fake.hand_guide(path, duration_s=1.0)
    clock.now += 0.5
    assert np.all(arm.read_joints()[:6] == 0)  # servo mode: the joints hold against the hand
    arm.teach_mode(True)
    assert fake.mode == 2
    fake.hand_guide(path, duration_s=1.0)
    recorded = []
    for _ in range(31):  # teleoperation recording at 30 Hz
        recorded.append(arm.read_joints())
        clock.now += 1 / 30
    recorded = np.array(recorded)
    np.testing.assert_allclose(recorded[0, :6], path[0])
    np.testing.assert_allclose(recorded[15, :6], path[1], atol=1e-6)
    np.testing.assert_allclose(recorded[-1, :6], path[-1])
    assert np.all(np.diff(recorded[:, 0]) > 0)
    arm.teach_mode(False)
    clock.now += 1
    assert fake.mode == 1 and not commands(fake, "set_servo_angle_j")
    np.testing.assert_allclose(arm.read_joints()[:6], path[-1])  # it stays where the hand left it


def test_forward_kinematics_matches_ufactory_reference_pose(arm):
    np.testing.assert_allclose(arm.forward_kinematics(np.zeros(7)), [207, 0, 112], atol=1e-6)
    code, pose = arm.api.get_forward_kinematics([0] * 6, input_is_radian=False, return_is_radian=False)
    assert code == 0
    np.testing.assert_allclose(pose[3:], [180, 0, 0], atol=1e-6)


def test_disconnect_is_idempotent_and_holds_the_arm(arm):
    fake = arm.api
    arm.disconnect()
    arm.disconnect()
    arm.stop()  # safe when not connected
    assert not fake.connected and commands(fake, "set_state")[-1].arguments == {"state": 4}
    assert commands(fake, "set_gripper_enable")[-1].arguments == {"enable": True}  # keeps its grip
    with pytest.raises(RobotError, match="not connected"):
        arm.read_joints()
