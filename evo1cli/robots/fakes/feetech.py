"""Simulated Feetech STS3215 servos behind a simulated serial port: the lowest boundary of the SO-100 driver.

`FakePortHandler` is scservo_sdk's own `PortHandler` with only the serial device replaced (`FakeSerial`), so the
real `PacketHandler`, `GroupSyncRead` and `GroupSyncWrite` run unchanged: every instruction packet they write is
parsed (header 0xFF 0xFF, id, length, instruction, parameters, checksum) and answered with framed status packets by
`FakeSTS3215` servos, each with its own memory map (EEPROM 0..39, SRAM 40..), as the Feetech STS manual lays it
out. The map here is written from the manual, independently of the driver's table, so an address slip in the
driver shows up in tests.

Simulated: ping (also broadcast), read, write, reg write / action, sync read, sync write; the Response_Status_Level
rule (level 0 answers only ping and read); baud rate (a servo only hears the port at its own baud); the homing
offset (Present_Position = actual - Homing_Offset, modulo 4096; goals are clamped to the position limits); motion
towards the goal at a limited speed (Goal_Velocity, else `max_speed`) while torque is on; EEPROM writes persist
across `power_cycle()` only when Lock is 0; status bits reported in every status packet and in the Status register,
and an unloading fault (overload, overcurrent, overheating by default) drops the torque as the servo does.

Failures it can show: a silent servo (`responding = False`: the SDK times out), corrupted replies (a servo's
`corrupt_replies` count: bad checksums), status bits (its `faults`), a port that does not exist (the pyserial error
of a missing device). Tests stage them (tests/fake_events.py); the simulation answers as the servos would.

Not simulated: acceleration, gravity (a limp arm stays where it is), load and current, reply latency, and what
the firmware does with Goal_Position when torque comes on (it keeps the stale register: the worst case).

A `hand` moves servos whose torque is off along a scripted trajectory (a teleoperation leader, a calibration
sweep); `goal_log` records every Goal_Position that reached a servo, to check that nothing outside limits did.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import scservo_sdk as scs
import serial

# STS3215 memory map (Feetech STS series manual)
FIRMWARE_MAJOR, FIRMWARE_MINOR, MODEL_NUMBER, ID, BAUD_RATE, RETURN_DELAY, RESPONSE_LEVEL = 0, 1, 3, 5, 6, 7, 8
MIN_LIMIT, MAX_LIMIT, UNLOADING_CONDITION, P_GAIN, D_GAIN, I_GAIN, HOMING_OFFSET = 9, 11, 19, 21, 22, 23, 31
EEPROM_END = 40
TORQUE_ENABLE, ACCELERATION, GOAL_POSITION, GOAL_VELOCITY, TORQUE_LIMIT, LOCK = 40, 41, 42, 46, 48, 55
PRESENT_POSITION, PRESENT_VELOCITY, PRESENT_VOLTAGE, PRESENT_TEMPERATURE, STATUS, MOVING = 56, 58, 62, 63, 65, 66
READ_ONLY = frozenset(range(0, 5)) | frozenset(range(56, 71))
BAUD_CODES = {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 57_600, 6: 38_400, 7: 19_200}

VOLTAGE, ANGLE_SENSOR, OVERHEAT, OVERCURRENT, OVERLOAD = 0x01, 0x02, 0x04, 0x08, 0x20
STS3215 = 777

PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x82, 0x83
BROADCAST = 0xFE


def _sign_magnitude(value: int, sign_bit: int) -> int:
    magnitude = value & ((1 << sign_bit) - 1)
    return -magnitude if value >> sign_bit & 1 else magnitude


def _frame(servo_id: int, body: bytes) -> bytes:
    """0xFF 0xFF id length body checksum, length = len(body) + 1."""
    packet = bytes([servo_id, len(body) + 1, *body])
    return b"\xff\xff" + packet + bytes([~sum(packet) & 0xFF])


@dataclass(frozen=True)
class GoalWrite:
    t: float
    id: int
    value: int  # the raw Goal_Position register value the servo received


class FakeSTS3215:
    """One servo. `actual` is the encoder position before the homing offset, in steps (0..4095)."""

    def __init__(
        self,
        servo_id: int,
        *,
        actual: float = 2048.0,
        model_number: int = STS3215,
        firmware: tuple[int, int] = (3, 10),
        max_speed: float = 3000.0,
    ):
        m = bytearray(256)
        m[FIRMWARE_MAJOR], m[FIRMWARE_MINOR] = firmware
        m[MODEL_NUMBER : MODEL_NUMBER + 2] = model_number.to_bytes(2, "little")
        m[ID], m[BAUD_RATE], m[RETURN_DELAY], m[RESPONSE_LEVEL] = servo_id, 0, 250, 1
        m[MAX_LIMIT : MAX_LIMIT + 2] = (4095).to_bytes(2, "little")
        m[13], m[14], m[15] = 70, 140, 40  # temperature and voltage limits
        m[16:18] = (1000).to_bytes(2, "little")  # max torque
        m[UNLOADING_CONDITION], m[20] = OVERHEAT | OVERCURRENT | OVERLOAD, 47
        m[P_GAIN], m[D_GAIN], m[I_GAIN] = 32, 32, 0
        m[TORQUE_LIMIT : TORQUE_LIMIT + 2] = (1000).to_bytes(2, "little")
        m[LOCK] = 1
        m[PRESENT_VOLTAGE], m[PRESENT_TEMPERATURE] = 74, 30
        self.memory = m
        self.saved_eeprom = bytes(m[:EEPROM_END])
        self.actual = float(actual)
        self.max_speed = max_speed
        self.responding = True
        self.faults = 0
        self.corrupt_replies = 0
        self.registered: tuple[int, bytes] | None = None  # a REG_WRITE waiting for ACTION
        self.memory[GOAL_POSITION : GOAL_POSITION + 2] = self.present_position.to_bytes(2, "little")

    def _u16(self, addr: int) -> int:
        return int.from_bytes(self.memory[addr : addr + 2], "little")

    @property
    def id(self) -> int:
        return self.memory[ID]

    @property
    def baudrate(self) -> int:
        return BAUD_CODES.get(self.memory[BAUD_RATE], 0)

    @property
    def homing_offset(self) -> int:
        return _sign_magnitude(self._u16(HOMING_OFFSET), 11)

    @property
    def limits(self) -> tuple[int, int]:
        return self._u16(MIN_LIMIT), self._u16(MAX_LIMIT)

    @property
    def torque_enabled(self) -> bool:
        return self.memory[TORQUE_ENABLE] == 1

    @property
    def goal_position(self) -> int:
        return self._u16(GOAL_POSITION)

    @property
    def present_position(self) -> int:
        return round(self.actual - self.homing_offset) % 4096

    def _target(self) -> int:
        lo, hi = self.limits
        return min(hi, max(lo, self.goal_position)) if hi > lo else self.goal_position

    def step(self, dt: float, hand: float | None) -> None:
        """Advance `dt` seconds: with torque, towards the goal at limited speed; without, where the hand holds it."""
        if self.torque_enabled:
            present, target = self.actual - self.homing_offset, self._target()
            present %= 4096
            speed = abs(_sign_magnitude(self._u16(GOAL_VELOCITY), 15)) or self.max_speed
            move = max(-speed * dt, min(speed * dt, target - present))
            self.actual = (present + move + self.homing_offset) % 4096
            velocity = round(move / dt) if dt > 0 else 0
        else:
            velocity = 0
            if hand is not None:
                self.actual = float(hand) % 4096
        m = self.memory
        m[PRESENT_POSITION : PRESENT_POSITION + 2] = self.present_position.to_bytes(2, "little")
        m[PRESENT_VELOCITY : PRESENT_VELOCITY + 2] = (abs(velocity) | (0x8000 if velocity < 0 else 0)).to_bytes(
            2, "little"
        )
        m[STATUS] = self.faults
        m[MOVING] = int(self.torque_enabled and abs(self._target() - self.present_position) > 1)

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.memory[addr : addr + length])

    def write(self, addr: int, data: bytes) -> None:
        for offset, byte in enumerate(data):
            a = addr + offset
            if a in READ_ONLY or a > 255:
                continue
            if a == TORQUE_ENABLE and byte and self.faults & self.memory[UNLOADING_CONDITION]:
                continue  # a servo in an unloading fault stays limp
            self.memory[a] = byte
            if a < EEPROM_END and self.memory[LOCK] == 0:
                self.saved_eeprom = self.saved_eeprom[:a] + bytes([byte]) + self.saved_eeprom[a + 1 :]

    def power_cycle(self) -> None:
        """Power off and on: faults cleared, torque off, RAM reset, EEPROM as last saved with Lock = 0."""
        self.faults = 0
        self.memory[:EEPROM_END] = self.saved_eeprom
        self.memory[TORQUE_ENABLE], self.memory[LOCK] = 0, 1
        self.memory[GOAL_POSITION : GOAL_POSITION + 2] = self.present_position.to_bytes(2, "little")


class FakeFeetechBus:
    """Servos daisy-chained on one simulated serial line; `port_handler` is the driver's port-handler factory."""

    def __init__(
        self,
        servos: Iterable[FakeSTS3215],
        *,
        port: str = "/dev/ttyACM0",
        clock: Callable[[], float] = time.monotonic,
        hand: Callable[[float], Mapping[int, float]] | None = None,
    ):
        self.servos = {s.id: s for s in servos}
        self.port = port
        self.clock = clock
        self.hand = hand  # time -> {servo id: actual encoder position}, applied to servos with torque off
        self.goal_log: list[GoalWrite] = []
        self.packets: list[bytes] = []  # every instruction packet received, for tests
        self._last_step = clock()

    def port_handler(self, port_name: str) -> FakePortHandler:
        """What the driver calls instead of `scservo_sdk.PortHandler(port_name)`."""
        return FakePortHandler(port_name, self if port_name == self.port else None)

    def step(self) -> None:
        now = self.clock()
        dt, self._last_step = max(0.0, now - self._last_step), now
        held = self.hand(now) if self.hand else {}
        for servo in self.servos.values():
            servo.step(dt, held.get(servo.id))

    def handle(self, packet: bytes, baudrate: int) -> bytes:
        """Answer one instruction packet (checksum already verified) as the servos on the line would."""
        self.packets.append(packet)
        self.step()
        target, instruction, params = packet[2], packet[4], packet[5:-1]
        listening = {i: s for i, s in self.servos.items() if s.responding and s.baudrate == baudrate}
        if instruction == SYNC_READ:
            addr, length = params[0], params[1]
            return b"".join(
                self._reply(listening[i], listening[i].read(addr, length)) for i in params[2:] if i in listening
            )
        if instruction == SYNC_WRITE:
            addr, length = params[0], params[1]
            for at in range(2, len(params) - length + 1, length + 1):
                if params[at] in listening:
                    self._write(listening[params[at]], addr, params[at + 1 : at + 1 + length])
            return b""
        if target == BROADCAST:
            if instruction == PING:
                return b"".join(self._reply(s, b"") for _, s in sorted(listening.items()))
            for servo in listening.values():
                self._execute(servo, instruction, params)
            return b""
        servo = listening.get(target)
        if servo is None:
            return b""
        data = self._execute(servo, instruction, params)
        if data is None and servo.memory[RESPONSE_LEVEL] == 0:
            return b""
        return self._reply(servo, data or b"")

    def _execute(self, servo: FakeSTS3215, instruction: int, params: bytes) -> bytes | None:
        """Carry out a ping / read / write / reg write / action; returns read data (None for no data)."""
        if instruction == PING:
            return b""
        if instruction == READ:
            return servo.read(params[0], params[1])
        if instruction == WRITE:
            self._write(servo, params[0], params[1:])
        elif instruction == REG_WRITE:
            servo.registered = (params[0], bytes(params[1:]))
        elif instruction == ACTION and servo.registered:
            self._write(servo, *servo.registered)
            servo.registered = None
        return None

    def _write(self, servo: FakeSTS3215, addr: int, data: bytes) -> None:
        servo.write(addr, data)
        if addr <= GOAL_POSITION and addr + len(data) >= GOAL_POSITION + 2:
            self.goal_log.append(GoalWrite(self.clock(), servo.id, servo.goal_position))

    def _reply(self, servo: FakeSTS3215, data: bytes) -> bytes:
        packet = _frame(servo.id, bytes([servo.faults]) + data)
        if servo.corrupt_replies:
            servo.corrupt_replies -= 1
            packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
        return packet


class FakeSerial:
    """The part of `serial.Serial` that `PortHandler` uses, wired to a `FakeFeetechBus`."""

    def __init__(self, bus: FakeFeetechBus, baudrate: int):
        self.bus = bus
        self.baudrate = baudrate
        self.is_open = True
        self._tx = bytearray()
        self._rx = bytearray()

    def write(self, data: Sequence[int]) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        self._tx += bytes(data)
        while True:
            start = self._tx.find(b"\xff\xff")
            if start < 0:
                del self._tx[:-1]  # line noise; a header may still start with the last byte
                break
            if len(self._tx) < start + 4 or len(self._tx) < start + 4 + self._tx[start + 3]:
                break
            end = start + 4 + self._tx[start + 3]
            packet = bytes(self._tx[start:end])
            del self._tx[:end]
            if packet[-1] == ~sum(packet[2:-1]) & 0xFF:  # a servo ignores a packet with a bad checksum
                self._rx += self.bus.handle(packet, self.baudrate)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def flush(self) -> None:
        """Output is delivered at once; like pyserial's flush, this leaves unread input alone."""

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def close(self) -> None:
        self.is_open = False


class FakePortHandler(scs.PortHandler):
    """scservo_sdk's PortHandler on a `FakeSerial`; with no bus, opening fails as pyserial does for a missing port."""

    def __init__(self, port_name: str, bus: FakeFeetechBus | None):
        super().__init__(port_name)
        self.bus = bus

    def setupPort(self, cflag_baud: int) -> bool:
        if self.is_open:
            self.closePort()
        if self.bus is None:
            message = f"could not open port {self.port_name}: [Errno 2] No such file or directory: '{self.port_name}'"
            raise serial.SerialException(errno.ENOENT, message)
        self.ser = FakeSerial(self.bus, self.baudrate)
        self.is_open = True
        self.ser.reset_input_buffer()
        self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
        return True


# --- a simulated SO-100 arm ----------------------------------------------------------------------------------------

# LeRobot calibration of the simulated arm: name -> (id, homing_offset, range_min, range_max)
SO100_CALIBRATION = {
    "shoulder_pan": (1, -37, 760, 3330),
    "shoulder_lift": (2, 412, 820, 3210),
    "elbow_flex": (3, -281, 870, 3080),
    "wrist_flex": (4, 95, 840, 3190),
    "wrist_roll": (5, -12, 0, 4095),
    "gripper": (6, 1320, 2010, 3420),
}


def so100_servos(calibration: Mapping[str, tuple[int, int, int, int]] = SO100_CALIBRATION) -> list[FakeSTS3215]:
    """Six STS3215s carrying `calibration` in EEPROM, each in the middle of its range, torque off."""
    servos = []
    for servo_id, offset, lo, hi in calibration.values():
        servo = FakeSTS3215(servo_id, actual=((lo + hi) / 2 + offset) % 4096)
        servo.memory[LOCK] = 0
        servo.write(HOMING_OFFSET, (abs(offset) | (0x800 if offset < 0 else 0)).to_bytes(2, "little"))
        servo.write(MIN_LIMIT, lo.to_bytes(2, "little") + hi.to_bytes(2, "little"))
        servo.memory[LOCK] = 1
        servo.power_cycle()
        servos.append(servo)
    return servos


def sweeping_hand(
    calibration: Mapping[str, tuple[int, int, int, int]] = SO100_CALIBRATION, *, amplitude: float = 0.3
) -> Callable[[float], dict[int, float]]:
    """A hand moving each joint slowly about the middle of its range (a leader arm being teleoperated)."""

    def hand(t: float) -> dict[int, float]:
        return {
            servo_id: (lo + hi) / 2 + offset + amplitude * (hi - lo) / 2 * math.sin(2 * math.pi * t / (6 + servo_id))
            for servo_id, offset, lo, hi in calibration.values()
        }

    return hand


def so100_fake_bus(port: str, *, clock: Callable[[], float] = time.monotonic) -> FakeFeetechBus:
    """The simulated arm `connection.fake: true` uses. A sweeping hand moves it whenever torque is off: the leader
    during teleoperation, either arm during calibration."""
    return FakeFeetechBus(so100_servos(), port=port, clock=clock, hand=sweeping_hand())
