"""SO-100 arms on Feetech buses: `SO100` (the follower, an `Arm`) and `SO100Leader` (read-only, for teleoperation).

What reaches the servos mirrors LeRobot 0.3's `SO100Follower` / `SO100Leader`, so recordings share the units of
LeRobot's SO-100 datasets: body joints in -100..100 over each joint's calibrated range (degrees about the middle of
the range with `use_degrees: true`, as LeRobot's `use_degrees`), the gripper in 0..100. Calibration files are
LeRobot's, in LeRobot's places, so an arm calibrated with `lerobot-calibrate` works here as it is.

`connection` keys (RobotConfig.connection):
    port: /dev/ttyACM0            follower bus
    leader_port: /dev/ttyACM1     leader bus (teleoperation)
    id: so100_follower            calibration file name, LeRobot's --robot.id
    leader_id: so100_leader       LeRobot's --teleop.id
    calibration_dir: null         directory holding <id>.json; default LeRobot's:
                                  $HF_LEROBOT_CALIBRATION/{robots/so100_follower,teleoperators/so100_leader}
                                  (with fake: true, the same layout under the temp dir)
    ids: [1, 2, 3, 4, 5, 6]       motor ids, in `joints` order
    use_degrees: false
    disable_torque_on_disconnect: false
    baudrate: 1000000
    fake: false                   simulated servos instead of the serial ports (`evo1cli.robots.session.make_arm`
                                  passes their port handlers in; this driver never imports them)

Disconnecting holds the arm where it is (goal = present position, torque stays on; the servos keep holding after
the port closes, until powered off). LeRobot's default instead drops the torque, which lets the arm fall wherever
it is; `disable_torque_on_disconnect: true` does that, for an arm already lowered to its rest pose.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import Arm, RobotConfig, RobotError
from evo1cli.robots.feetech import (
    DEFAULT_BAUDRATE,
    FeetechBus,
    Motor,
    NormMode,
    PortHandlerFactory,
    RangeProgress,
    calibrate,
    load_calibration,
    require_sdk,
    save_calibration,
)

logger = logging.getLogger(__name__)

SO100_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
FULL_TURN_JOINTS = ("wrist_roll",)  # calibrated over the full 0..4095, as LeRobot does
GRIPPER = "gripper"  # normalised 0..100
# LeRobot's SO100Follower.configure: P lowered from 32 to 16 against shaking, I 0, D 32.
FOLLOWER_PID = {"P_Coefficient": 16, "I_Coefficient": 0, "D_Coefficient": 32}


def lerobot_calibration_root() -> Path:
    """LeRobot's HF_LEROBOT_CALIBRATION, resolved as `lerobot.constants` resolves it."""
    if os.environ.get("HF_LEROBOT_CALIBRATION"):
        return Path(os.environ["HF_LEROBOT_CALIBRATION"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(os.environ.get("HF_LEROBOT_HOME") or Path(hf_home) / "lerobot").expanduser() / "calibration"


@dataclass(frozen=True)
class SO100Connection:
    """The `connection` section of an SO-100 robot config."""

    port: str
    leader_port: str | None = None
    id: str = "so100_follower"
    leader_id: str = "so100_leader"
    calibration_dir: str | None = None
    ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    use_degrees: bool = False
    disable_torque_on_disconnect: bool = False
    baudrate: int = DEFAULT_BAUDRATE
    fake: bool = False
    sim: str | None = None  # a digital twin scene under the simulated hardware (set by --sim)

    @classmethod
    def from_config(cls, config: RobotConfig) -> SO100Connection:
        raw = dict(config.connection)
        known = [f.name for f in fields(cls)]

        def fail(key: str, message: str) -> Evo1Error:
            return Evo1Error(message, path=config.source, field=f"connection.{key}")

        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise fail(unknown[0], f"unknown key (SO-100 connection keys: {', '.join(known)})")
        if not isinstance(raw.get("port"), str):
            raise fail("port", "the follower's serial port, e.g. /dev/ttyACM0, is required")
        for key in ("leader_port", "id", "leader_id", "calibration_dir", "sim"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise fail(key, f"expected a string, got {raw[key]!r}")
        for key in ("use_degrees", "disable_torque_on_disconnect", "fake"):
            if key in raw and not isinstance(raw[key], bool):
                raise fail(key, f"expected true or false, got {raw[key]!r}")
        if "baudrate" in raw and (not isinstance(raw["baudrate"], int) or isinstance(raw["baudrate"], bool)):
            raise fail("baudrate", f"expected an integer, got {raw['baudrate']!r}")
        if "ids" in raw:
            ids = raw["ids"]
            if not isinstance(ids, list | tuple) or not all(isinstance(i, int) and 0 <= i < 253 for i in ids):
                raise fail("ids", f"expected a list of motor ids (0..252), got {ids!r}")
            raw["ids"] = tuple(ids)
        connection = cls(**raw)
        if len(connection.ids) != len(config.joints) or len(set(connection.ids)) != len(connection.ids):
            raise fail("ids", f"expected {len(config.joints)} distinct ids, one per joint {list(config.joints)}")
        return connection

    def calibration_file(self, leader: bool) -> Path:
        """<calibration_dir>/<id>.json; by default LeRobot's file, or for a simulated arm one in the temp dir, so
        that calibrating a simulation never overwrites a real arm's calibration."""
        name = self.leader_id if leader else self.id
        if self.calibration_dir is not None:
            return Path(self.calibration_dir).expanduser() / f"{name}.json"
        kind = "teleoperators/so100_leader" if leader else "robots/so100_follower"
        simulated = "evo1-twin-calibration" if self.sim else "evo1-fake-calibration"  # twins have their own
        root = Path(tempfile.gettempdir()) / simulated if self.fake else lerobot_calibration_root()
        return root / kind / f"{name}.json"


class _SO100Link:
    """One SO-100 arm on its bus, as far as follower and leader share it: open, calibration, configuration, reads."""

    def __init__(self, config: RobotConfig, *, leader: bool, port_handler_factory: PortHandlerFactory | None):
        require_sdk()
        self.config = config
        self.connection = connection = SO100Connection.from_config(config)
        self.leader = leader
        port = connection.leader_port if leader else connection.port
        if port is None:
            raise Evo1Error(
                "the leader arm's serial port is required", path=config.source, field="connection.leader_port"
            )
        if port_handler_factory is None and connection.fake:
            raise RobotError(
                "connection.fake is true but no simulated port was passed in: open the arm with "
                "evo1cli.robots.session.make_arm"
            )
        body = NormMode.DEGREES if connection.use_degrees else NormMode.RANGE_M100_100
        motors = {
            name: Motor(motor_id, NormMode.RANGE_0_100 if name == GRIPPER else body)
            for name, motor_id in zip(config.joints, connection.ids, strict=True)
        }
        self.calibration_path = connection.calibration_file(leader)
        label = "SO-100 leader" if leader else "SO-100 follower"
        self.bus = FeetechBus(
            port, motors, port_handler_factory=port_handler_factory, baudrate=connection.baudrate, label=label
        )

    def open(self) -> None:
        """Connect, make the motors hold the calibration file's offsets and limits, configure them; torque off."""
        path = self.calibration_path
        calibration = None
        if path.is_file():
            calibration = load_calibration(path, self.bus.motors)
        elif not self.connection.fake:
            role = "--leader " if self.leader else ""
            raise RobotError(
                f"{self.bus.label}: no calibration file {path}: calibrate the arm first (`evo1 calibrate so100 "
                f"{role}...`, or LeRobot's lerobot-calibrate with the same id), or set connection.calibration_dir"
            )
        self.bus.connect()
        try:
            if calibration is None:  # a simulated arm comes calibrated
                calibration = self.bus.read_calibration()
            self.bus.disable_torque()
            if self.bus.matches_calibration(calibration):
                self.bus.calibration = dict(calibration)
            else:
                logger.info("%s: writing the calibration of %s into the motors", self.bus.label, path)
                self.bus.write_calibration(calibration)
            self.bus.configure_motors()
        except BaseException:
            self.bus.disconnect()
            raise

    def read(self) -> np.ndarray:
        positions = self.bus.read_positions()
        return np.array([positions[name] for name in self.config.joints], dtype=np.float64)


class SO100(Arm):
    """The SO-100 follower arm. Joint vectors are in LeRobot's units (see the module docstring)."""

    def __init__(self, config: RobotConfig, *, port_handler_factory: PortHandlerFactory | None = None):
        super().__init__(config)
        self._link = _SO100Link(config, leader=False, port_handler_factory=port_handler_factory)
        self.bus = self._link.bus

    def connect(self) -> None:
        """Open the bus, load and apply the calibration, configure (LeRobot's gains), hold the present pose."""
        if self.bus.is_connected:
            return
        self._link.open()
        try:
            for name in self.bus.motors:
                for register, value in FOLLOWER_PID.items():
                    self.bus.write(register, name, value)
            self._hold()  # so that torque-on does not jump to a stale goal
            self.bus.enable_torque()
        except BaseException:
            self.bus.disconnect()
            raise

    def _hold(self) -> None:
        self.bus.sync_write("Goal_Position", self.bus.sync_read("Present_Position"))

    def disconnect(self) -> None:
        """Hold the present pose (or drop the torque, if configured to) and close the port. Idempotent."""
        if not self.bus.is_connected:
            return
        try:
            self._hold()
            if self._link.connection.disable_torque_on_disconnect:
                self.bus.disable_torque(num_retry=5)
        finally:
            self.bus.disconnect()

    def read_joints(self) -> np.ndarray:
        return self._link.read()

    def send_joints(self, target: np.ndarray) -> None:
        """Goal positions (dof,), clamped to the calibrated range, in one sync write (no reply, as LeRobot)."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (self.dof,) or not np.all(np.isfinite(target)):
            raise RobotError(f"SO-100 follower: expected {self.dof} finite joint targets, got {target.tolist()}")
        self.bus.write_goal_positions(dict(zip(self.config.joints, target.tolist(), strict=True)))

    def stop(self) -> None:
        """Goal = present position on every motor. Does nothing when not connected."""
        if self.bus.is_connected:
            self._hold()


class SO100Leader:
    """The leader arm a person moves during teleoperation: torque off, read-only, same units as the follower."""

    def __init__(self, config: RobotConfig, *, port_handler_factory: PortHandlerFactory | None = None):
        self.config = config
        self._link = _SO100Link(config, leader=True, port_handler_factory=port_handler_factory)
        self.bus = self._link.bus

    @property
    def dof(self) -> int:
        return len(self.config.joints)

    def connect(self) -> None:
        if not self.bus.is_connected:
            self._link.open()

    def disconnect(self) -> None:
        """Close the port (torque is already off). Idempotent."""
        self.bus.disconnect()

    def read_joints(self) -> np.ndarray:
        """The leader's joint positions (dof,): the action of a teleoperated demonstration."""
        return self._link.read()


def calibrate_so100(
    config: RobotConfig,
    *,
    leader: bool = False,
    wait_for_middle: Callable[[], None],
    finished: Callable[[RangeProgress], bool],
    port_handler_factory: PortHandlerFactory | None = None,
    poll_s: float = 0.02,
) -> Path:
    """Run LeRobot's calibration on the follower (or the leader) and write its file; returns the file's path.

    Torque goes off and stays off: hold the arm. See `evo1cli.robots.feetech.calibrate` for the callbacks.
    """
    link = _SO100Link(config, leader=leader, port_handler_factory=port_handler_factory)
    link.bus.connect()
    try:
        calibration = calibrate(
            link.bus,
            wait_for_middle=wait_for_middle,
            finished=finished,
            full_turn_motors=FULL_TURN_JOINTS,
            poll_s=poll_s,
        )
    finally:
        link.bus.disconnect()
    save_calibration(calibration, link.calibration_path)
    return link.calibration_path
