"""A small Feetech STS3215 bus over the official `scservo_sdk` (pip `feetech-servo-sdk`), doing to the servos what
LeRobot 0.3 (`lerobot.motors.feetech.FeetechMotorsBus`) does, so that our SO-100 data uses LeRobot's units.

- Protocol 0 (STS series), 1 Mbaud, LeRobot's packet timeout (50 ms plus transfer time).
- Calibration: LeRobot 0.3's JSON files (motor name -> id, drive_mode, homing_offset, range_min, range_max). The
  servo reports `Present_Position = actual - Homing_Offset`; the offset is written so that the middle of the range
  reads 2047 (LeRobot's half-turn homing), and range_min/range_max go into the servo's position limits.
- Normalisation: body joints -100..100 over range_min..range_max (or degrees about the middle of the range),
  the gripper 0..100, exactly as `MotorsBus._normalize` / `_unnormalize` compute it (truncation included).
- Every failure (port missing, motor silent, corrupted reply, wrong model, status bits such as overload) becomes
  one `RobotError` line naming the arm, the motor and the port.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

from evo1cli.robots.base import RobotError

logger = logging.getLogger(__name__)

STS3215_MODEL_NUMBER = 777
RESOLUTION = 4096
MAX_POSITION = RESOLUTION - 1
DEFAULT_BAUDRATE = 1_000_000
PROTOCOL_VERSION = 0

# name: (address, bytes). The STS/SMS memory map, as in LeRobot's `STS_SMS_SERIES_CONTROL_TABLE` (addresses < 40
# are EEPROM and need Lock = 0 to survive a power cycle).
CONTROL_TABLE: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Unloading_Condition": (19, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Maximum_Acceleration": (85, 1),
}
# Registers stored as sign-magnitude, with the sign in this bit (LeRobot's STS_SMS_SERIES_ENCODINGS_TABLE).
SIGN_BITS = {"Homing_Offset": 11, "Goal_Velocity": 15, "Present_Velocity": 15}
# Error bits of a status packet (and of the Status register), as the SDK's `getRxPacketError` names them.
STATUS_BITS = {
    0x01: "input voltage out of range",
    0x02: "angle sensor error",
    0x04: "overheating",
    0x08: "overcurrent",
    0x20: "overload",
}
POSITION_MODE = 0
_OPEN_ERRORS = {
    errno.ENOENT: "no such serial port",
    errno.EACCES: "permission denied (add your user to the dialout group)",
    errno.EBUSY: "busy (another program has it open)",
}


class NormMode(str, Enum):
    """LeRobot's `MotorNormMode`, same values."""

    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"


@dataclass(frozen=True)
class Motor:
    id: int
    norm_mode: NormMode


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's entry of a LeRobot 0.3 calibration file (same fields, same order)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


@dataclass(frozen=True)
class RangeProgress:
    """What `calibrate` has recorded so far, for display; raw positions per motor name."""

    mins: dict[str, int]
    positions: dict[str, int]
    maxes: dict[str, int]


PortHandlerFactory = Callable[[str], Any]  # port name -> an object with scservo_sdk.PortHandler's interface


# --- calibration files -------------------------------------------------------------------------------------------


def load_calibration(path: str | Path, motors: Mapping[str, Motor] | None = None) -> dict[str, MotorCalibration]:
    """Read a LeRobot 0.3 calibration file; with `motors`, check that it covers exactly those motors and ids."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise RobotError(f"{path}: calibration file not found") from None
    except (OSError, ValueError) as e:
        raise RobotError(f"{path}: not a readable JSON calibration file ({e})") from None
    names = [f.name for f in fields(MotorCalibration)]
    if not isinstance(raw, dict):
        raise RobotError(f"{path}: expected an object of motor name -> {{{', '.join(names)}}}")
    calibration = {}
    for motor, entry in raw.items():
        if not isinstance(entry, dict) or sorted(entry) != sorted(names):
            raise RobotError(f"{path}: {motor}: expected the keys {', '.join(names)}")
        if not all(isinstance(entry[k], int) and not isinstance(entry[k], bool) for k in names):
            raise RobotError(f"{path}: {motor}: every value must be an integer")
        calibration[motor] = MotorCalibration(**{k: entry[k] for k in names})
    for motor, cal in calibration.items():
        if cal.range_min >= cal.range_max:
            raise RobotError(f"{path}: {motor}: range_min {cal.range_min} must be below range_max {cal.range_max}")
    if motors is not None:
        if set(calibration) != set(motors):
            raise RobotError(f"{path}: calibrates {sorted(calibration)}, the arm has {sorted(motors)}")
        for motor, m in motors.items():
            if calibration[motor].id != m.id:
                raise RobotError(
                    f"{path}: {motor}: calibrated as motor id {calibration[motor].id}, configured as {m.id}"
                )
    return calibration


def save_calibration(calibration: Mapping[str, MotorCalibration], path: str | Path) -> None:
    """Write `calibration` as LeRobot 0.3 writes it (draccus JSON, indent 4)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({motor: asdict(cal) for motor, cal in calibration.items()}, indent=4))


# --- units -------------------------------------------------------------------------------------------------------


def normalize(raw: int, cal: MotorCalibration, mode: NormMode) -> float:
    """Raw `Present_Position` -> user units, as LeRobot's `MotorsBus._normalize`."""
    lo, hi = cal.range_min, cal.range_max
    if mode is NormMode.DEGREES:
        return (raw - (lo + hi) / 2) * 360 / MAX_POSITION
    fraction = (min(hi, max(lo, raw)) - lo) / (hi - lo)
    if mode is NormMode.RANGE_M100_100:
        return -(fraction * 200 - 100) if cal.drive_mode else fraction * 200 - 100
    return 100 - fraction * 100 if cal.drive_mode else fraction * 100


def unnormalize(value: float, cal: MotorCalibration, mode: NormMode) -> int:
    """User units -> raw `Goal_Position`, as LeRobot's `MotorsBus._unnormalize` (values outside the range clamp)."""
    lo, hi = cal.range_min, cal.range_max
    if mode is NormMode.DEGREES:
        return int(value * MAX_POSITION / 360 + (lo + hi) / 2)
    if mode is NormMode.RANGE_M100_100:
        value = min(100.0, max(-100.0, -value if cal.drive_mode else value))
        return int((value + 100) / 200 * (hi - lo) + lo)
    value = min(100.0, max(0.0, 100 - value if cal.drive_mode else value))
    return int(value / 100 * (hi - lo) + lo)


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    if abs(value) >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit in {sign_bit} bits plus a sign bit")
    return (1 << sign_bit) | -value if value < 0 else value


def decode_sign_magnitude(value: int, sign_bit: int) -> int:
    magnitude = value & ((1 << sign_bit) - 1)
    return -magnitude if value >> sign_bit & 1 else magnitude


def _set_packet_timeout(port: Any, packet_length: int) -> None:
    """LeRobot's fix of the SDK's too-short status timeout (https://gitee.com/ftservo/SCServoSDK/issues/IBY2S6)."""
    port.packet_start_time = port.getCurrentTime()
    port.packet_timeout = port.tx_time_per_byte * packet_length + port.tx_time_per_byte * 3.0 + 50


def require_sdk() -> types.ModuleType:
    """`scservo_sdk`, or a RobotError saying how to install it."""
    try:
        import scservo_sdk
    except ImportError:
        raise RobotError("the SO-100 driver needs the Feetech SDK: pip install feetech-servo-sdk==1.0.0") from None
    return scservo_sdk


# --- the bus -----------------------------------------------------------------------------------------------------


class FeetechBus:
    """STS3215 servos daisy-chained on one serial port. Values are raw unless a method says it normalises.

    Thread-safe: a lock serialises transactions, so a watchdog may call `stop` while a loop reads.
    """

    def __init__(
        self,
        port: str,
        motors: Mapping[str, Motor],
        *,
        calibration: Mapping[str, MotorCalibration] | None = None,
        port_handler_factory: PortHandlerFactory | None = None,
        baudrate: int = DEFAULT_BAUDRATE,
        label: str = "Feetech bus",
    ):
        self._scs = require_sdk()
        if len({m.id for m in motors.values()}) != len(motors):
            raise RobotError(f"{label}: two motors share an id: {dict(motors)}")
        self.port = port
        self.motors = dict(motors)
        self.calibration = dict(calibration or {})
        self.baudrate = baudrate
        self.label = label
        self.port_handler = (port_handler_factory or self._scs.PortHandler)(port)
        self.port_handler.setPacketTimeout = types.MethodType(_set_packet_timeout, self.port_handler)
        self.packet_handler = self._scs.PacketHandler(PROTOCOL_VERSION)
        self._names = {m.id: name for name, m in self.motors.items()}
        self._lock = threading.RLock()

    # connection

    @property
    def is_connected(self) -> bool:
        return bool(self.port_handler.is_open)

    def connect(self) -> None:
        """Open the port, then check that every motor answers, is an STS3215, and that firmware versions agree."""
        if self.is_connected:
            return
        try:
            opened = self.port_handler.setBaudRate(self.baudrate)  # what PortHandler.openPort does, at our baud
        except OSError as e:  # serial.SerialException is an OSError
            reason = _OPEN_ERRORS.get(e.errno, e.strerror or str(e))
            raise RobotError(
                f"{self.label}: cannot open {self.port}: {reason} (check the USB cable and `connection` in the robot "
                "config; `ls /dev/ttyACM* /dev/ttyUSB*` lists candidates)"
            ) from None
        if not opened:
            raise RobotError(f"{self.label}: {self.port}: unsupported baud rate {self.baudrate}")
        try:
            self._handshake()
        except RobotError:
            self.port_handler.closePort()
            raise

    def _handshake(self) -> None:
        for name, motor in self.motors.items():
            model = self.ping(name)
            if model != STS3215_MODEL_NUMBER:
                raise RobotError(
                    f"{self.label}: {self._motor(motor.id)} on {self.port} is model number {model}, expected an "
                    f"STS3215 ({STS3215_MODEL_NUMBER}): check the motor ids"
                )
        firmware = {
            name: f"{self.read('Firmware_Major_Version', name)}.{self.read('Firmware_Minor_Version', name)}"
            for name in self.motors
        }
        if len(set(firmware.values())) > 1:
            raise RobotError(
                f"{self.label}: motors on {self.port} run different firmware versions {firmware}: update them with "
                "Feetech's FD software"
            )

    def disconnect(self) -> None:
        """Close the port (torque is left as it is: see `disable_torque`). Idempotent."""
        with self._lock:
            if self.is_connected:
                self.port_handler.is_using = False
                self.port_handler.closePort()

    # errors

    def _motor(self, motor_id: int) -> str:
        return f"motor {motor_id} ({self._names.get(motor_id, '?')})"

    def _comm_error(self, comm: int, motor_id: int, doing: str) -> RobotError:
        scs, where = self._scs, f"{self._motor(motor_id)} on {self.port} while {doing}"
        if comm == scs.COMM_RX_TIMEOUT:
            reason = f"no response from {where}: check that it is powered and cabled and that its id is {motor_id}"
        elif comm == scs.COMM_RX_CORRUPT:
            reason = f"corrupted reply from {where}: check the cables and the power supply"
        else:
            reason = f"{self._sdk_message(comm)} ({where})"
        return RobotError(f"{self.label}: {reason}")

    def _sdk_message(self, comm: int) -> str:
        """The SDK's text for a communication result, without its "[TxRxResult] " prefix and "!"."""
        return self.packet_handler.getTxRxResult(comm).split("] ")[-1].rstrip("!")

    def status_error(self, motor_id: int, status: int) -> RobotError:
        names = [text for bit, text in STATUS_BITS.items() if status & bit] or ["an unknown error"]
        return RobotError(
            f"{self.label}: {self._motor(motor_id)} on {self.port} reports {' and '.join(names)} "
            f"(status 0x{status:02x}): remove the cause, then power-cycle the arm",
            code=status,
        )

    def _check(self, comm: int, error: int, motor_id: int, doing: str) -> None:
        if comm != self._scs.COMM_SUCCESS:
            raise self._comm_error(comm, motor_id, doing)
        if error:
            raise self.status_error(motor_id, error)

    def _drain(self) -> None:
        """Forget a transaction that failed half-way: unread replies, the SDK's busy flag."""
        self.port_handler.is_using = False
        pending = self.port_handler.getBytesAvailable()
        if pending:
            self.port_handler.readPort(pending)

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise RobotError(f"{self.label}: not connected to {self.port}")

    # single motors

    def ping(self, motor: str) -> int:
        """The motor's model number."""
        motor_id = self.motors[motor].id
        with self._lock:
            self._require_connected()
            model, comm, error = self.packet_handler.ping(self.port_handler, motor_id)
            self._check(comm, error, motor_id, "pinging it")
        return model

    def read(self, data_name: str, motor: str, *, num_retry: int = 0) -> int:
        addr, length = CONTROL_TABLE[data_name]
        motor_id = self.motors[motor].id
        with self._lock:
            self._require_connected()
            for _ in range(num_retry + 1):
                data, comm, error = self.packet_handler.readTxRx(self.port_handler, motor_id, addr, length)
                if comm == self._scs.COMM_SUCCESS:
                    break
                self._drain()
            self._check(comm, error, motor_id, f"reading {data_name}")
        value = int.from_bytes(bytes(data), "little")
        return decode_sign_magnitude(value, SIGN_BITS[data_name]) if data_name in SIGN_BITS else value

    def write(self, data_name: str, motor: str, value: int, *, num_retry: int = 0) -> None:
        """Write one register and check the motor's reply (slower than `sync_write`, for configuration)."""
        addr, length = CONTROL_TABLE[data_name]
        motor_id = self.motors[motor].id
        data = self._serialize(data_name, value)
        with self._lock:
            self._require_connected()
            for _ in range(num_retry + 1):
                comm, error = self.packet_handler.writeTxRx(self.port_handler, motor_id, addr, length, data)
                if comm == self._scs.COMM_SUCCESS:
                    break
                self._drain()
            self._check(comm, error, motor_id, f"writing {data_name} = {value}")

    @staticmethod
    def _serialize(data_name: str, value: int) -> list[int]:
        length = CONTROL_TABLE[data_name][1]
        value = int(value)
        if data_name in SIGN_BITS:
            value = encode_sign_magnitude(value, SIGN_BITS[data_name])
        if not 0 <= value < 1 << 8 * length:
            raise ValueError(f"{data_name} = {value} does not fit in {length} unsigned byte(s)")
        return list(value.to_bytes(length, "little"))

    # all motors at once

    def _names_or_all(self, motors: Iterable[str] | None) -> list[str]:
        return list(self.motors) if motors is None else list(motors)

    def _sync_read(self, addr: int, length: int, motors: list[str], doing: str, num_retry: int) -> dict[str, bytes]:
        scs, ids = self._scs, [self.motors[name].id for name in motors]
        with self._lock:
            self._require_connected()
            for _ in range(num_retry + 1):
                reader = scs.GroupSyncRead(self.port_handler, self.packet_handler, addr, length)
                for motor_id in ids:
                    reader.addParam(motor_id)
                comm = reader.txRxPacket()
                if comm == scs.COMM_SUCCESS:
                    return {name: bytes(reader.data_dict[self.motors[name].id]) for name in motors}
                self._drain()
        # GroupSyncRead stops at the first motor that fails: the first one without data.
        failed = next((i for i in ids if not reader.isAvailable(i, addr, length)), ids[0])
        raise self._comm_error(comm, failed, doing)

    def sync_read(self, data_name: str, motors: Iterable[str] | None = None, *, num_retry: int = 1) -> dict[str, int]:
        addr, length = CONTROL_TABLE[data_name]
        names = self._names_or_all(motors)
        data = self._sync_read(addr, length, names, f"reading {data_name}", num_retry)
        values = {name: int.from_bytes(data[name], "little") for name in names}
        if data_name in SIGN_BITS:
            values = {name: decode_sign_magnitude(v, SIGN_BITS[data_name]) for name, v in values.items()}
        return values

    def sync_write(self, data_name: str, values: Mapping[str, int]) -> None:
        """One broadcast packet, no reply (as LeRobot's teleoperation loop writes goals)."""
        addr, length = CONTROL_TABLE[data_name]
        writer = self._scs.GroupSyncWrite(self.port_handler, self.packet_handler, addr, length)
        for name, value in values.items():
            writer.addParam(self.motors[name].id, self._serialize(data_name, value))
        with self._lock:
            self._require_connected()
            comm = writer.txPacket()
            if comm != self._scs.COMM_SUCCESS:
                self._drain()
                raise RobotError(f"{self.label}: cannot write {data_name} on {self.port}: {self._sdk_message(comm)}")

    # positions

    def read_positions(self, *, normalized: bool = True, num_retry: int = 1) -> dict[str, float]:
        """Present positions of every motor; raises on any status bit (overload, voltage, temperature...).

        One sync read covers Present_Position through Status, so the check costs no extra round trip.
        """
        addr = CONTROL_TABLE["Present_Position"][0]
        status_at = CONTROL_TABLE["Status"][0] - addr
        names = list(self.motors)
        data = self._sync_read(addr, status_at + 1, names, "reading Present_Position", num_retry)
        for name in names:
            if data[name][status_at]:
                raise self.status_error(self.motors[name].id, data[name][status_at])
        raw = {name: int.from_bytes(data[name][:2], "little") for name in names}
        if not normalized:
            return dict(raw)
        return {name: normalize(raw[name], self._calibration(name), self.motors[name].norm_mode) for name in names}

    def write_goal_positions(self, values: Mapping[str, float]) -> dict[str, int]:
        """Normalised goals -> raw, clamped to the calibrated range, sync-written. Returns the raw goals."""
        raw = {}
        for name, value in values.items():
            cal = self._calibration(name)
            raw[name] = min(cal.range_max, max(cal.range_min, unnormalize(value, cal, self.motors[name].norm_mode)))
        self.sync_write("Goal_Position", raw)
        return raw

    def _calibration(self, name: str) -> MotorCalibration:
        if name not in self.calibration:
            raise RobotError(f"{self.label}: motor {name} has no calibration")
        return self.calibration[name]

    # torque and configuration (LeRobot's FeetechMotorsBus)

    def enable_torque(self, motors: Iterable[str] | None = None, num_retry: int = 0) -> None:
        for name in self._names_or_all(motors):
            self.write("Torque_Enable", name, 1, num_retry=num_retry)
            self.write("Lock", name, 1, num_retry=num_retry)

    def disable_torque(self, motors: Iterable[str] | None = None, num_retry: int = 0) -> None:
        """Torque off and EEPROM unlocked (EEPROM writes then survive a power cycle)."""
        for name in self._names_or_all(motors):
            self.write("Torque_Enable", name, 0, num_retry=num_retry)
            self.write("Lock", name, 0, num_retry=num_retry)

    def configure_motors(self, return_delay_time: int = 0, maximum_acceleration: int = 254, acceleration: int = 254):
        """Shortest reply delay (default 500 us) and fastest acceleration, as LeRobot does; then position mode."""
        for name in self.motors:
            self.write("Return_Delay_Time", name, return_delay_time)
            self.write("Maximum_Acceleration", name, maximum_acceleration)
            self.write("Acceleration", name, acceleration)
            self.write("Operating_Mode", name, POSITION_MODE)

    # calibration

    def read_calibration(self) -> dict[str, MotorCalibration]:
        """The calibration stored in the motors (drive_mode is not stored: 0)."""
        return {
            name: MotorCalibration(
                id=m.id,
                drive_mode=0,
                homing_offset=self.read("Homing_Offset", name),
                range_min=self.read("Min_Position_Limit", name),
                range_max=self.read("Max_Position_Limit", name),
            )
            for name, m in self.motors.items()
        }

    def write_calibration(self, calibration: Mapping[str, MotorCalibration]) -> None:
        """Homing offsets and position limits into the motors (torque must be off); also used to normalise."""
        for name, cal in calibration.items():
            self.write("Homing_Offset", name, cal.homing_offset)
            self.write("Min_Position_Limit", name, cal.range_min)
            self.write("Max_Position_Limit", name, cal.range_max)
        self.calibration = dict(calibration)

    def matches_calibration(self, calibration: Mapping[str, MotorCalibration]) -> bool:
        """Whether the motors hold `calibration`'s offsets and limits (LeRobot's `is_calibrated`)."""
        stored = self.read_calibration()
        return set(stored) == set(calibration) and all(
            (s.homing_offset, s.range_min, s.range_max)
            == (calibration[n].homing_offset, calibration[n].range_min, calibration[n].range_max)
            for n, s in stored.items()
        )

    def reset_calibration(self, motors: Iterable[str] | None = None) -> None:
        for name in self._names_or_all(motors):
            self.write("Homing_Offset", name, 0)
            self.write("Min_Position_Limit", name, 0)
            self.write("Max_Position_Limit", name, MAX_POSITION)
        self.calibration = {}

    def set_half_turn_homings(self, motors: Iterable[str] | None = None) -> dict[str, int]:
        """Write offsets that make the present positions read 2047 (half a turn); returns them."""
        names = self._names_or_all(motors)
        self.reset_calibration(names)
        positions = self.sync_read("Present_Position", names)
        offsets = {name: pos - MAX_POSITION // 2 for name, pos in positions.items()}
        for name, offset in offsets.items():
            self.write("Homing_Offset", name, offset)
        return offsets

    def record_ranges_of_motion(
        self, motors: Iterable[str], finished: Callable[[RangeProgress], bool], poll_s: float = 0.02
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Raw min and max positions seen until `finished(progress)` returns True (the user pressed Enter)."""
        names = list(motors)
        mins = self.sync_read("Present_Position", names)
        maxes = dict(mins)
        while True:
            positions = self.sync_read("Present_Position", names)
            mins = {n: min(mins[n], positions[n]) for n in names}
            maxes = {n: max(maxes[n], positions[n]) for n in names}
            if finished(RangeProgress(dict(mins), positions, dict(maxes))):
                break
            time.sleep(poll_s)
        still = [n for n in names if mins[n] == maxes[n]]
        if still:
            raise RobotError(
                f"{self.label}: calibration: {', '.join(still)} did not move; move every joint through its whole "
                "range before finishing"
            )
        return mins, maxes


def calibrate(
    bus: FeetechBus,
    *,
    wait_for_middle: Callable[[], None],
    finished: Callable[[RangeProgress], bool],
    full_turn_motors: Iterable[str] = ("wrist_roll",),
    poll_s: float = 0.02,
) -> dict[str, MotorCalibration]:
    """LeRobot's SO-100 calibration on a connected bus; writes the result into the motors and returns it.

    Torque goes off (hold the arm). `wait_for_middle()` returns once the user has put every joint in the middle of
    its range: that pose becomes position 2047. Then positions are recorded until `finished(progress)` is True while
    the user moves every joint through its range; `full_turn_motors` get the full 0..4095. Torque stays off.
    """
    bus.disable_torque()
    for name in bus.motors:
        bus.write("Operating_Mode", name, POSITION_MODE)
    wait_for_middle()
    offsets = bus.set_half_turn_homings()
    full_turn = [name for name in full_turn_motors if name in bus.motors]
    mins, maxes = bus.record_ranges_of_motion([n for n in bus.motors if n not in full_turn], finished, poll_s)
    for name in full_turn:
        mins[name], maxes[name] = 0, MAX_POSITION
    calibration = {
        name: MotorCalibration(m.id, 0, offsets[name], mins[name], maxes[name]) for name, m in bus.motors.items()
    }
    bus.write_calibration(calibration)
    return calibration
