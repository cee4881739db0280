"""SO-100 driver: the real scservo_sdk PacketHandler against simulated STS3215 servos behind a fake serial port."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scservo_sdk as scs
from fake_events import FakeClock, corrupt_next_replies, fault, waypoint_hand

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import Limits, RobotConfig, RobotError
from evo1cli.robots.fakes.feetech import (
    GOAL_POSITION,
    OVERLOAD,
    SO100_CALIBRATION,
    VOLTAGE,
    FakeFeetechBus,
    FakePortHandler,
    FakeSTS3215,
    so100_servos,
)
from evo1cli.robots.feetech import (
    CONTROL_TABLE,
    MotorCalibration,
    NormMode,
    load_calibration,
    normalize,
    save_calibration,
    unnormalize,
)
from evo1cli.robots.session import make_arm, make_leader
from evo1cli.robots.so100 import SO100, SO100_JOINTS, SO100Connection, SO100Leader, calibrate_so100

PORT, LEADER_PORT = "/dev/ttyACM0", "/dev/ttyACM1"
CALIBRATION = {name: MotorCalibration(i, 0, off, lo, hi) for name, (i, off, lo, hi) in SO100_CALIBRATION.items()}
MIDDLE = {name: (cal.range_min + cal.range_max) / 2 for name, cal in CALIBRATION.items()}


def so100_config(tmp_path: Path, **connection) -> RobotConfig:
    limits = Limits(lower=(-100.0,) * 5 + (0.0,), upper=(100.0,) * 5 + (100.0,), max_step=(10.0,) * 6)
    connection = {"port": PORT, "leader_port": LEADER_PORT, "calibration_dir": str(tmp_path), **connection}
    return RobotConfig(robot="so100", joints=SO100_JOINTS, limits=limits, home=(0.0,) * 6, connection=connection)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock) -> FakeFeetechBus:
    return FakeFeetechBus(so100_servos(), port=PORT, clock=clock)


@pytest.fixture
def calibrated(tmp_path) -> Path:
    save_calibration(CALIBRATION, tmp_path / "so100_follower.json")
    save_calibration(CALIBRATION, tmp_path / "so100_leader.json")
    return tmp_path


@pytest.fixture
def arm(tmp_path, calibrated, fake):
    arm = SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler)
    arm.connect()
    yield arm
    arm.disconnect()


def actual_for(name: str, present: float) -> float:
    """The encoder position at which a servo of the simulated arm reports `present`."""
    return present + CALIBRATION[name].homing_offset


# --- protocol -----------------------------------------------------------------------------------------------------


def test_protocol_round_trips_through_the_real_packet_handler(fake):
    port, packets = fake.port_handler(PORT), scs.PacketHandler(0)
    assert port.openPort()

    model, comm, error = packets.ping(port, 1)
    assert (model, comm, error) == (777, scs.COMM_SUCCESS, 0)
    assert fake.packets[0] == bytes.fromhex("ffff010201fb")  # header, id 1, length 2, PING, checksum ~(1+2+1)

    position, comm, _ = packets.read2ByteTxRx(port, 3, CONTROL_TABLE["Present_Position"][0])
    assert comm == scs.COMM_SUCCESS and position == fake.servos[3].present_position == round(MIDDLE["elbow_flex"])

    comm, error = packets.write2ByteTxRx(port, 2, GOAL_POSITION, 1234)
    assert (comm, error) == (scs.COMM_SUCCESS, 0) and fake.servos[2].goal_position == 1234

    reader = scs.GroupSyncRead(port, packets, CONTROL_TABLE["Present_Position"][0], 2)
    for servo_id in range(1, 7):
        reader.addParam(servo_id)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    assert [reader.getData(i, 56, 2) for i in range(1, 7)] == [fake.servos[i].present_position for i in range(1, 7)]

    writer = scs.GroupSyncWrite(port, packets, GOAL_POSITION, 2)
    for servo_id in range(1, 7):
        writer.addParam(servo_id, [servo_id, 8])  # 8 * 256 + id
    assert writer.txPacket() == scs.COMM_SUCCESS
    assert port.getBytesAvailable() == 0  # sync write: no status packets
    assert [fake.servos[i].goal_position for i in range(1, 7)] == [2048 + i for i in range(1, 7)]
    assert [(w.id, w.value) for w in fake.goal_log] == [(2, 1234)] + [(i, 2048 + i) for i in range(1, 7)]

    _, comm, _ = packets.ping(port, 9)
    assert comm == scs.COMM_RX_TIMEOUT


def test_servo_applies_homing_offset_limits_and_limited_speed(fake, clock):
    port, packets = fake.port_handler(PORT), scs.PacketHandler(0)
    port.openPort()
    servo = fake.servos[1]  # homing offset -37, limits 760..3330
    assert servo.present_position == round(servo.actual + 37) % 4096
    packets.write1ByteTxRx(port, 1, CONTROL_TABLE["Torque_Enable"][0], 1)
    packets.write2ByteTxRx(port, 1, GOAL_POSITION, 4000)  # beyond Max_Position_Limit
    clock.advance(0.1)
    moved = packets.read2ByteTxRx(port, 1, 56)[0] - round(MIDDLE["shoulder_pan"])
    assert 250 <= moved <= 300  # 3000 steps/s
    clock.advance(5)
    assert packets.read2ByteTxRx(port, 1, 56)[0] == 3330


# --- calibration files and units ----------------------------------------------------------------------------------


def test_calibration_file_round_trip_in_lerobot_format(tmp_path):
    path = tmp_path / "arm.json"
    save_calibration(CALIBRATION, path)
    raw = json.loads(path.read_text())
    assert list(raw) == list(SO100_JOINTS)
    assert list(raw["gripper"]) == ["id", "drive_mode", "homing_offset", "range_min", "range_max"]
    assert raw["shoulder_pan"] == {"id": 1, "drive_mode": 0, "homing_offset": -37, "range_min": 760, "range_max": 3330}
    assert path.read_text().startswith('{\n    "shoulder_pan": {\n        "id": 1,')  # draccus: indent 4
    assert load_calibration(path) == CALIBRATION


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON"),
        ('{"gripper": {"id": 6}}', "expected the keys"),
        ('{"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, "range_min": 9, "range_max": 9}}', "below"),
    ],
)
def test_malformed_calibration_file_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "arm.json"
    path.write_text(content)
    with pytest.raises(RobotError, match=message):
        load_calibration(path)


def test_normalisation_matches_lerobot():
    feetech = pytest.importorskip("lerobot.motors.feetech")
    from lerobot.motors import Motor as LeRobotMotor
    from lerobot.motors import MotorCalibration as LeRobotCalibration
    from lerobot.motors import MotorNormMode

    modes = [NormMode.RANGE_M100_100, NormMode.RANGE_0_100, NormMode.DEGREES]
    for drive_mode in (0, 1):
        ours = {i + 1: MotorCalibration(i + 1, drive_mode, 0, 760, 3330) for i in range(3)}
        bus = feetech.FeetechMotorsBus(
            "/dev/null",
            {f"m{i}": LeRobotMotor(i, "sts3215", MotorNormMode(modes[i - 1].value)) for i in ours},
            calibration={f"m{i}": LeRobotCalibration(**vars(cal)) for i, cal in ours.items()},
        )
        for i, mode in zip(ours, modes, strict=True):
            for raw in (0, 760, 761, 1500, 2045, 3329, 3330, 4095):
                assert normalize(raw, ours[i], mode) == pytest.approx(bus._normalize({i: raw})[i], abs=1e-12)
            for value in (-150.0, -100.0, -33.3, 0.0, 12.7, 50.0, 99.99, 100.0, 170.0):
                if mode is NormMode.DEGREES and not 0 <= bus._unnormalize({i: value})[i] <= 4095:
                    continue
                assert unnormalize(value, ours[i], mode) == bus._unnormalize({i: value})[i]
    for name, (addr, length) in CONTROL_TABLE.items():
        assert feetech.tables.STS_SMS_SERIES_CONTROL_TABLE[name] == (addr, length), name


# --- follower -----------------------------------------------------------------------------------------------------


def test_connect_configures_like_lerobot_and_reads_the_middle(arm, fake):
    for servo in fake.servos.values():
        m = servo.memory
        assert (m[7], m[41], m[85], m[33]) == (0, 254, 254, 0)  # return delay, acceleration, max acceleration, mode
        assert (m[21], m[23], m[22]) == (16, 0, 32)  # P, I, D
        assert servo.torque_enabled and m[55] == 1  # torque on, EEPROM locked
    np.testing.assert_allclose(arm.read_joints(), [0, 0, 0, 0, 0, 50], atol=0.05)


def test_connect_does_not_jump_to_a_stale_goal(tmp_path, calibrated, fake, clock):
    fake.servos[2].write(GOAL_POSITION, (900).to_bytes(2, "little"))  # left over from an earlier session
    arm = SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler)
    arm.connect()
    clock.advance(2)
    assert arm.read_joints()[1] == pytest.approx(0.0, abs=0.05)
    arm.disconnect()


def test_send_joints_moves_the_arm_and_stop_holds(arm, fake, clock):
    target = np.array([-50.0, 25.0, 60.0, -10.0, 30.0, 80.0])
    arm.send_joints(target)
    clock.advance(2)
    np.testing.assert_allclose(arm.read_joints(), target, atol=0.1)

    arm.send_joints(np.array([50.0, 25.0, 60.0, -10.0, 30.0, 80.0]))
    clock.advance(0.1)  # part-way: 300 of 1285 steps
    arm.stop()
    stopped = arm.read_joints()
    assert -50 < stopped[0] < 0
    clock.advance(2)
    np.testing.assert_allclose(arm.read_joints(), stopped, atol=0.1)


def test_nothing_outside_the_calibrated_range_reaches_the_servos(tmp_path, calibrated, fake):
    for use_degrees, extreme in ((False, 150.0), (True, 500.0)):
        arm = SO100(so100_config(tmp_path, use_degrees=use_degrees), port_handler_factory=fake.port_handler)
        arm.connect()
        arm.send_joints(np.full(6, extreme))
        arm.send_joints(np.full(6, -extreme))
        arm.disconnect()
    limits = {i: (lo, hi) for i, _, lo, hi in SO100_CALIBRATION.values()}
    assert fake.goal_log and all(limits[w.id][0] <= w.value <= limits[w.id][1] for w in fake.goal_log)
    assert {w.value for w in fake.goal_log if w.id == 1} >= {760, 3330}


def test_degrees_mode(tmp_path, calibrated, fake, clock):
    arm = SO100(so100_config(tmp_path, use_degrees=True), port_handler_factory=fake.port_handler)
    arm.connect()
    arm.send_joints(np.array([90.0, 0.0, 0.0, 0.0, 0.0, 50.0]))
    clock.advance(2)
    fake.step()
    assert fake.servos[1].present_position == int(90 * 4095 / 360 + MIDDLE["shoulder_pan"])
    assert arm.read_joints()[0] == pytest.approx(90.0, abs=0.1)
    arm.disconnect()


def test_send_joints_rejects_bad_vectors(arm):
    for bad in (np.zeros(5), np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0])):
        with pytest.raises(RobotError, match="expected 6 finite joint targets"):
            arm.send_joints(bad)


def test_disconnect_holds_by_default_or_drops_torque_when_configured(tmp_path, calibrated, fake):
    for drop, torque_after in ((False, True), (True, False)):
        arm = SO100(so100_config(tmp_path, disable_torque_on_disconnect=drop), port_handler_factory=fake.port_handler)
        arm.connect()
        arm.disconnect()
        arm.disconnect()  # idempotent
        arm.stop()  # harmless when disconnected
        assert not arm.bus.is_connected
        assert all(s.torque_enabled is torque_after for s in fake.servos.values())


def test_connect_writes_the_file_calibration_into_the_servos(tmp_path, fake):
    shifted = {
        name: MotorCalibration(c.id, 0, c.homing_offset + 10, c.range_min + 5, c.range_max - 5)
        for name, c in CALIBRATION.items()
    }
    save_calibration(shifted, tmp_path / "so100_follower.json")
    arm = SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler)
    arm.connect()
    arm.disconnect()
    for servo in fake.servos.values():
        servo.power_cycle()  # the calibration was written unlocked: it survives
    cal = shifted["elbow_flex"]
    assert (fake.servos[3].homing_offset, *fake.servos[3].limits) == (cal.homing_offset, cal.range_min, cal.range_max)


# --- leader and teleoperation -------------------------------------------------------------------------------------


def test_leader_follows_the_hand_and_the_follower_follows_the_leader(tmp_path, calibrated, fake, clock):
    quarter = {name: (c.range_max - c.range_min) / 4 for name, c in CALIBRATION.items()}
    start = {c.id: actual_for(n, MIDDLE[n]) for n, c in CALIBRATION.items()}
    end = {c.id: actual_for(n, MIDDLE[n] + quarter[n]) for n, c in CALIBRATION.items()}
    hand = waypoint_hand([(0.0, start), (1.0, end)])
    leader_bus = FakeFeetechBus(so100_servos(), port=LEADER_PORT, clock=clock, hand=hand)
    config = so100_config(tmp_path)
    leader = SO100Leader(config, port_handler_factory=leader_bus.port_handler)
    follower = SO100(config, port_handler_factory=fake.port_handler)
    leader.connect()
    follower.connect()
    assert not any(s.torque_enabled for s in leader_bus.servos.values())

    # a quarter of each range: +50 on the body joints' -100..100, +25 on the gripper's 0..100
    for t, fraction in ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0), (3.0, 1.0)):
        clock.now = t
        np.testing.assert_allclose(leader.read_joints(), [50 * fraction] * 5 + [50 + 25 * fraction], atol=0.1)

    clock.now = 0.0
    for _ in range(45):  # 1.5 s of teleoperation at 30 Hz
        follower.send_joints(leader.read_joints())
        clock.advance(1 / 30)
    np.testing.assert_allclose(follower.read_joints(), leader.read_joints(), atol=0.1)
    leader.disconnect()
    follower.disconnect()


# --- failures -----------------------------------------------------------------------------------------------------


def test_missing_servo_at_connect(tmp_path, calibrated, fake):
    fake.servos[3].responding = False
    arm = SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler)
    with pytest.raises(RobotError, match=r"^SO-100 follower: no response from motor 3 \(elbow_flex\) on /dev/ttyACM0"):
        arm.connect()
    assert not arm.bus.is_connected


def test_servo_lost_during_a_session(arm, fake):
    fake.servos[5].responding = False
    with pytest.raises(RobotError, match=r"no response from motor 5 \(wrist_roll\) .* while reading Present_Position"):
        arm.read_joints()
    fake.servos[5].responding = True
    assert arm.read_joints().shape == (6,)  # the bus recovers once the motor answers again


def test_corrupted_reply_is_retried_once_then_reported(arm, fake):
    corrupt_next_replies(fake, 2, 1)
    assert arm.read_joints().shape == (6,)
    corrupt_next_replies(fake, 2, 2)  # the read and its retry
    with pytest.raises(RobotError, match=r"corrupted reply from motor 2 \(shoulder_lift\) on /dev/ttyACM0"):
        arm.read_joints()


def test_overload_status_bit(arm, fake):
    fault(fake.servos[4], OVERLOAD)
    with pytest.raises(
        RobotError, match=r"motor 4 \(wrist_flex\) on /dev/ttyACM0 reports overload \(status 0x20\)"
    ) as e:
        arm.read_joints()
    assert e.value.code == OVERLOAD and "\n" not in str(e.value)
    assert not fake.servos[4].torque_enabled  # the servo unloaded itself


def test_status_bits_at_connect(tmp_path, calibrated, fake):
    fault(fake.servos[6], VOLTAGE)
    with pytest.raises(RobotError, match=r"motor 6 \(gripper\) .* reports input voltage out of range") as e:
        SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler).connect()
    assert e.value.code == VOLTAGE


def test_wrong_model_number(tmp_path, calibrated, clock):
    servos = so100_servos()
    servos[0] = FakeSTS3215(1, model_number=2825)  # an STS3250
    fake = FakeFeetechBus(servos, port=PORT, clock=clock)
    with pytest.raises(RobotError, match=r"motor 1 \(shoulder_pan\) on /dev/ttyACM0 is model number 2825, expected"):
        SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler).connect()


def test_port_not_found(tmp_path, calibrated, fake):
    arm = SO100(so100_config(tmp_path, port="/dev/ttyACM9"), port_handler_factory=fake.port_handler)
    with pytest.raises(RobotError, match=r"^SO-100 follower: cannot open /dev/ttyACM9: no such serial port \("):
        arm.connect()


def test_missing_calibration_file_says_how_to_calibrate(tmp_path, fake):
    arm = SO100(so100_config(tmp_path, id="arm7"), port_handler_factory=fake.port_handler)
    with pytest.raises(RobotError, match=r"no calibration file .*arm7\.json: calibrate the arm first") as e:
        arm.connect()
    assert "\n" not in str(e.value)


def test_calibration_file_for_other_motors_is_rejected(tmp_path, fake):
    save_calibration({**CALIBRATION, "gripper": MotorCalibration(7, 0, 0, 10, 20)}, tmp_path / "so100_follower.json")
    with pytest.raises(RobotError, match=r"gripper: calibrated as motor id 7, configured as 6"):
        SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler).connect()


@pytest.mark.parametrize(
    ("connection", "field"),
    [
        ({"leaderport": "/dev/x"}, "connection.leaderport"),
        ({"ids": [1, 2, 3]}, "connection.ids"),
        ({"fake": "yes"}, "connection.fake"),
    ],
)
def test_bad_connection_keys(tmp_path, connection, field):
    with pytest.raises(Evo1Error, match=field):
        SO100(so100_config(tmp_path, **connection))


def test_calibration_files_live_where_lerobot_keeps_them_except_for_a_simulation(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "lerobot"))
    config = so100_config(tmp_path, calibration_dir=None, id="a", leader_id="b")
    real = SO100Connection.from_config(config)
    assert real.calibration_file(leader=False) == tmp_path / "lerobot/robots/so100_follower/a.json"
    assert real.calibration_file(leader=True) == tmp_path / "lerobot/teleoperators/so100_leader/b.json"
    simulated = SO100Connection.from_config(so100_config(tmp_path, calibration_dir=None, fake=True))
    assert not simulated.calibration_file(leader=False).is_relative_to(tmp_path / "lerobot")


def test_fake_connection_needs_no_hardware_nor_calibration(tmp_path):
    config = so100_config(tmp_path / "none", fake=True)
    with pytest.raises(RobotError, match="no simulated port was passed in"):
        SO100(config)  # a driver never decides on its own to simulate
    arm, leader = make_arm(config), make_leader(config)
    arm.connect()
    leader.connect()
    arm.send_joints(leader.read_joints())
    arm_bus, leader_bus = arm.bus.port_handler.bus, leader.bus.port_handler.bus  # the simulated lines
    assert arm_bus is not leader_bus and (arm_bus.port, leader_bus.port) == (PORT, LEADER_PORT)
    assert [w.id for w in arm_bus.goal_log[-6:]] == [1, 2, 3, 4, 5, 6]
    assert arm.read_joints().shape == (6,)
    leader.disconnect()
    arm.disconnect()


# --- calibration procedure ----------------------------------------------------------------------------------------


def sweep(middle: dict[int, float], span: dict[int, float]) -> list[tuple[float, dict[int, float]]]:
    """Middle at t=0, down by `span` at t=1, up by `span` at t=2, back at t=3 (actual encoder positions)."""
    return [
        (0.0, middle),
        (1.0, {i: p - span[i] for i, p in middle.items()}),
        (2.0, {i: p + span[i] for i, p in middle.items()}),
        (3.0, middle),
    ]


def test_calibrate_with_a_scripted_hand(tmp_path, clock):
    middle = {1: 2100, 2: 1800, 3: 2500, 4: 2000, 5: 1000, 6: 2300}  # encoder positions, uncalibrated servos
    span = {1: 1200, 2: 1000, 3: 1100, 4: 1000, 5: 300, 6: 600}
    fake = FakeFeetechBus(
        [FakeSTS3215(i, actual=p) for i, p in middle.items()],
        port=PORT,
        clock=clock,
        hand=waypoint_hand(sweep(middle, span)),
    )
    waited = []

    def finished(progress) -> bool:
        clock.advance(0.25)
        return clock.now > 3

    path = calibrate_so100(
        so100_config(tmp_path),
        wait_for_middle=lambda: waited.append(clock.now),
        finished=finished,
        port_handler_factory=fake.port_handler,
        poll_s=0,
    )
    assert waited == [0.0] and path == tmp_path / "so100_follower.json"
    calibration = load_calibration(path)
    for name, cal in calibration.items():
        i = cal.id
        assert cal.homing_offset == middle[i] - 2047  # the middle pose reads 2047
        expected = (0, 4095) if name == "wrist_roll" else (2047 - span[i], 2047 + span[i])
        assert (cal.range_min, cal.range_max) == expected, name
        fake.servos[i].power_cycle()
        assert (fake.servos[i].homing_offset, *fake.servos[i].limits) == (cal.homing_offset, *expected)

    arm = SO100(so100_config(tmp_path), port_handler_factory=fake.port_handler)
    arm.connect()  # the hand is back in the middle
    np.testing.assert_allclose(arm.read_joints(), [0, 0, 0, 0, -0.0244, 50], atol=0.01)
    arm.disconnect()


def test_calibrate_refuses_a_joint_that_did_not_move(tmp_path, clock):
    middle = {i: 2048 for i in range(1, 7)}
    span = {i: (0 if i == 3 else 500) for i in range(1, 7)}
    fake = FakeFeetechBus(
        [FakeSTS3215(i) for i in middle], port=PORT, clock=clock, hand=waypoint_hand(sweep(middle, span))
    )

    def finished(progress) -> bool:
        clock.advance(0.5)
        return clock.now > 3

    with pytest.raises(RobotError, match="elbow_flex did not move"):
        calibrate_so100(
            so100_config(tmp_path),
            wait_for_middle=lambda: None,
            finished=finished,
            port_handler_factory=fake.port_handler,
            poll_s=0,
        )
    assert not (tmp_path / "so100_follower.json").exists()


# --- LeRobot itself against the same simulated servos -------------------------------------------------------------


@pytest.fixture
def lerobot_on(monkeypatch):
    """LeRobot's FeetechMotorsBus opens `scservo_sdk.PortHandler(port)`: route that to a fake bus."""
    pytest.importorskip("lerobot.robots.so100_follower")

    def route(fake: FakeFeetechBus) -> None:
        class Handler(FakePortHandler):
            def __init__(self, port_name: str):
                super().__init__(port_name, fake if port_name == fake.port else None)

        monkeypatch.setattr(scs, "PortHandler", Handler)

    return route


def test_same_servo_state_and_readings_as_lerobot(tmp_path, calibrated, clock, lerobot_on):
    from lerobot.robots.so100_follower import SO100Follower, SO100FollowerConfig

    theirs = FakeFeetechBus(so100_servos(), port=PORT, clock=clock)
    ours = FakeFeetechBus(so100_servos(), port=PORT, clock=clock)
    lerobot_on(theirs)
    robot = SO100Follower(SO100FollowerConfig(port=PORT, id="so100_follower", calibration_dir=calibrated))
    robot.connect()  # loads our calibration file with draccus
    arm = SO100(so100_config(tmp_path), port_handler_factory=ours.port_handler)
    arm.connect()
    for i in range(1, 7):
        assert ours.servos[i].memory == theirs.servos[i].memory, f"servo {i}"
        assert ours.servos[i].saved_eeprom == theirs.servos[i].saved_eeprom

    target = np.array([-40.0, 12.5, 99.0, -100.0, 3.3, 71.0])
    robot.send_action({f"{n}.pos": v for n, v in zip(SO100_JOINTS, target, strict=True)})
    arm.send_joints(target)
    assert [(w.id, w.value) for w in ours.goal_log[-6:]] == [(w.id, w.value) for w in theirs.goal_log[-6:]]
    clock.advance(2)
    observation = robot.get_observation()
    np.testing.assert_array_equal(arm.read_joints(), [observation[f"{n}.pos"] for n in SO100_JOINTS])
    robot.disconnect()
    arm.disconnect()


def test_same_calibration_as_lerobot(tmp_path, clock, lerobot_on, monkeypatch):
    import lerobot.motors.motors_bus as motors_bus
    from lerobot.teleoperators.so100_leader import SO100Leader as LeRobotLeader
    from lerobot.teleoperators.so100_leader import SO100LeaderConfig

    middle = {1: 2100, 2: 1800, 3: 2500, 4: 2000, 5: 1000, 6: 2300}
    span = {1: 1200, 2: 1000, 3: 1100, 4: 1000, 5: 300, 6: 600}

    def arm_bus() -> FakeFeetechBus:
        servos = [FakeSTS3215(i, actual=p) for i, p in middle.items()]
        return FakeFeetechBus(servos, port=LEADER_PORT, clock=clock, hand=waypoint_hand(sweep(middle, span)))

    def finished(*_) -> bool:
        clock.advance(0.25)
        return clock.now > 3

    theirs = arm_bus()
    lerobot_on(theirs)
    monkeypatch.setattr("builtins.input", lambda *_: "")
    monkeypatch.setattr(motors_bus, "enter_pressed", finished)
    leader = LeRobotLeader(SO100LeaderConfig(port=LEADER_PORT, id="theirs", calibration_dir=tmp_path / "lerobot"))
    leader.connect()
    leader.disconnect()

    clock.now = 0.0
    ours = arm_bus()
    path = calibrate_so100(
        so100_config(tmp_path, leader_id="ours"),
        leader=True,
        wait_for_middle=lambda: None,
        finished=finished,
        port_handler_factory=ours.port_handler,
        poll_s=0,
    )
    assert path.read_text() == (tmp_path / "lerobot" / "theirs.json").read_text()
