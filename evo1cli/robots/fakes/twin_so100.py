"""The SO-100 twin's hardware: STS3215 servos whose encoders are the MuJoCo joints of a `TwinWorld`.

    hardware = attach(world, config)              # world: TwinWorld(CubeContainer(), ...)
    arm = SO100(config, port_handler_factory=hardware.follower)
    leader = SO100Leader(config, port_handler_factory=hardware.leader)
    hardware.guide(trajectory)                    # the person moves the leader along it (MJCF units)

The follower (`TwinServoBus`) is `FakeFeetechBus` with its motion replaced: each servo's encoder (`actual`) is the
twin's joint, converted to steps, and a Goal_Position drives the joint's MuJoCo position actuator, its target moving
towards the goal at the servo's speed limit (Goal_Velocity, else `max_speed`) as `FakeSTS3215.step` moves a servo.
So the actuator's forcerange (the STS3215's stall torque, 3.35 N m) decides what the joint can do: a joint pushed
against an obstacle, or loaded beyond the forcerange, stays where physics leaves it and the driver reads that.
Torque off makes the actuator limp (its gain and bias zeroed under the world's lock, restored at torque on): the arm
sags under gravity as a real one does. A `hand` (time -> {id: encoder steps}) moves limp joints kinematically: the
calibration sweep.

The leader is a plain `FakeFeetechBus` of six servos (torque off) whose hand follows `guide`'s trajectory.

Calibration (`TWIN_CALIBRATION`): LeRobot's "new calibration" puts each joint's mid-range at Present_Position 2047;
the STS3215 counts 4096 steps a turn and its steps increase with the MJCF angle (drive_mode 0), so a joint's range
is 2047 -+ half its MJCF range in steps. wrist_roll is calibrated over the full turn 0..4095 as LeRobot does (its
-100..100 then spans a whole turn, of which the model's range is 89 %). The homing offsets are small and nonzero,
to exercise them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from evo1cli.robots.fakes.feetech import (
    GOAL_VELOCITY,
    PRESENT_VELOCITY,
    FakeFeetechBus,
    FakeSTS3215,
    _sign_magnitude,
    so100_servos,
)
from evo1cli.robots.fakes.twin import TwinHardware
from evo1cli.sim.twin.scene import Trajectory

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
# the MJCF ranges of so101_new_calib.xml (radians; tests check them against the built model)
JOINT_RANGES = {
    "shoulder_pan": (-1.9198621771937616, 1.9198621771937634),
    "shoulder_lift": (-1.7453292519943224, 1.7453292519943366),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.6580628494556928, 1.6580627293335335),
    "wrist_roll": (-2.7438472969992493, 2.841206309382605),
    "gripper": (-0.17453297762778586, 1.7453291995659765),
}
FULL_TURN = ("wrist_roll",)
STEPS_PER_RAD = 4096 / (2 * math.pi)
MIDDLE = 2047  # Present_Position at mid-range after LeRobot's half-turn homing
HOMING_OFFSETS = {"shoulder_pan": 23, "shoulder_lift": -41, "elbow_flex": 57, "wrist_flex": -19, "wrist_roll": 11,
                  "gripper": 35}  # fmt: skip


def _center(name: str) -> float:
    lo, hi = JOINT_RANGES[name]
    return (lo + hi) / 2


def angle_to_steps(name: str, angle: float) -> float:
    """MJCF angle (rad) -> Present_Position steps (after the homing offset); `steps_to_angle` is its inverse."""
    return MIDDLE + (angle - _center(name)) * STEPS_PER_RAD


def steps_to_angle(name: str, steps: float) -> float:
    """Present_Position steps -> MJCF angle (rad); the inverse of `angle_to_steps`."""
    return _center(name) + (steps - MIDDLE) / STEPS_PER_RAD


def _calibration() -> dict[str, tuple[int, int, int, int]]:
    table = {}
    for servo_id, name in enumerate(JOINTS, start=1):
        lo, hi = JOINT_RANGES[name]
        rmin, rmax = (
            (0, 4095) if name in FULL_TURN else (round(angle_to_steps(name, lo)), round(angle_to_steps(name, hi)))
        )
        table[name] = (servo_id, HOMING_OFFSETS[name], rmin, rmax)
    return table


# LeRobot calibration of the twin: name -> (id, homing_offset, range_min, range_max)
TWIN_CALIBRATION = _calibration()


def hand_steps(
    q: np.ndarray, calibration: Mapping[str, tuple[int, int, int, int]] = TWIN_CALIBRATION
) -> dict[int, float]:
    """A pose (MJCF units, JOINTS order) as a hand holds it: {servo id: encoder steps (before the homing offset)}."""
    return {
        calibration[name][0]: angle_to_steps(name, float(angle)) + calibration[name][1]
        for name, angle in zip(JOINTS, q, strict=True)
    }


def sweep_hand(
    calibration: Mapping[str, tuple[int, int, int, int]] = TWIN_CALIBRATION,
) -> Callable[[float], dict[int, float]]:
    """A person calibrating: from its first call, hold every joint in the middle of its range (0.4 s), then move
    them all to range_min (by 0.9 s, held to 1.1 s), to range_max (by 2.0 s, held to 2.3 s) and back to the
    middle (by 2.7 s): within the 3 s `evo1 calibrate --sim` records. Full-turn joints stay in the middle."""
    knots = np.array([0.0, 0.4, 0.9, 1.1, 2.0, 2.3, 2.7])
    start: list[float] = []

    def hand(t: float) -> dict[int, float]:
        if not start:
            start.append(t)
        s = t - start[0]
        out = {}
        for name, (servo_id, offset, lo, hi) in calibration.items():
            mid = (lo + hi) / 2 if name not in FULL_TURN else MIDDLE
            path = [mid, mid, lo, lo, hi, hi, mid] if name not in FULL_TURN else [mid] * 7
            out[servo_id] = float(np.interp(s, knots, path)) + offset
        return out

    return hand


class TwinServoBus(FakeFeetechBus):
    """The follower: six STS3215s whose encoders are the twin's joints and whose goals drive its actuators."""

    def __init__(
        self,
        world: Any,
        *,
        port: str = "/dev/ttyACM0",
        calibration: Mapping[str, tuple[int, int, int, int]] = TWIN_CALIBRATION,
        hand: Callable[[float], Mapping[int, float]] | None = None,
    ):
        super().__init__(so100_servos(calibration), port=port, clock=world.clock, hand=hand)
        self.world = world
        self.names = [name for name in world.scene.joints]
        self.ids = [calibration[name][0] for name in self.names]
        model = world.model
        self._actuators = [model.actuator(name).id for name in world.scene.actuators]
        self._dofs = [model.jnt_dofadr[model.joint(name).id] for name in world.scene.joints]
        self._qpos = [model.jnt_qposadr[model.joint(name).id] for name in world.scene.joints]
        self._gains = {a: (model.actuator_gainprm[a].copy(), model.actuator_biasprm[a].copy()) for a in self._actuators}
        self._limp: set[int] = set()

    def _set_limp(self, actuator: int, limp: bool) -> None:
        model = self.world.model
        if limp and actuator not in self._limp:
            model.actuator_gainprm[actuator, 0] = 0.0
            model.actuator_biasprm[actuator, 1:3] = 0.0
            self._limp.add(actuator)
        elif not limp and actuator in self._limp:
            model.actuator_gainprm[actuator], model.actuator_biasprm[actuator] = self._gains[actuator]
            self._limp.discard(actuator)

    def step(self) -> None:
        now = self.clock()
        dt, self._last_step = max(0.0, now - self._last_step), now
        held = self.hand(now) if self.hand else {}
        world = self.world
        with world.lock:
            world.sync()
            targets = world.targets()
            data = world.data
            for i, (name, servo_id) in enumerate(zip(self.names, self.ids, strict=True)):
                servo: FakeSTS3215 = self.servos[servo_id]
                actuator = self._actuators[i]
                if servo.torque_enabled:
                    self._set_limp(actuator, False)
                    command = angle_to_steps(name, float(targets[i]))
                    speed = abs(_sign_magnitude(servo._u16(GOAL_VELOCITY), 15)) or servo.max_speed
                    move = max(-speed * dt, min(speed * dt, servo._target() - command))
                    targets[i] = steps_to_angle(name, command + move)
                else:
                    self._set_limp(actuator, True)
                    if servo_id in held:  # the hand moves the limp joint
                        data.qpos[self._qpos[i]] = steps_to_angle(name, held[servo_id] - servo.homing_offset)
                        data.qvel[self._dofs[i]] = 0.0
                    targets[i] = data.qpos[self._qpos[i]]  # torque on starts from here, not from a stale target
            world.set_targets(targets)
            q = data.qpos[self._qpos].copy()
            qvel = data.qvel[self._dofs].copy()
        for i, (name, servo_id) in enumerate(zip(self.names, self.ids, strict=True)):
            servo = self.servos[servo_id]
            servo.actual = (angle_to_steps(name, float(q[i])) + servo.homing_offset) % 4096
            servo.step(0.0, None)  # publish Present_Position, Status, Moving
            velocity = round(float(qvel[i]) * STEPS_PER_RAD)
            servo.memory[PRESENT_VELOCITY : PRESENT_VELOCITY + 2] = (
                min(abs(velocity), 0x7FFF) | (0x8000 if velocity < 0 else 0)
            ).to_bytes(2, "little")


class _Guide:
    """The leader's hand: a trajectory from a start time, or a held pose (MJCF units)."""

    def __init__(self, clock: Callable[[], float], hold: np.ndarray):
        self.clock = clock
        self.lock = threading.Lock()
        self.trajectory: Trajectory | None = None
        self.start = 0.0
        self.hold = np.asarray(hold, dtype=np.float64)

    def __call__(self, trajectory: Trajectory | None, hold: np.ndarray | None = None) -> None:
        with self.lock:
            if trajectory is not None:
                self.trajectory, self.start = trajectory, self.clock()
            else:
                self.trajectory = None
                if hold is not None:
                    self.hold = np.asarray(hold, dtype=np.float64)

    def pose(self, t: float) -> np.ndarray:
        with self.lock:
            if self.trajectory is None:
                return self.hold
            return self.trajectory.at(t - self.start)

    def hand(self, t: float) -> dict[int, float]:
        return hand_steps(self.pose(t))


def leader_bus(world: Any, port: str) -> tuple[FakeFeetechBus, _Guide]:
    """The scripted leader: six limp servos with TWIN_CALIBRATION that a guided hand moves (starting at home)."""
    guide = _Guide(world.clock, np.array(world.scene.home))
    servos = so100_servos(TWIN_CALIBRATION)
    for servo_id, steps in guide.hand(world.clock()).items():
        servos[servo_id - 1].actual = steps
    return FakeFeetechBus(servos, port=port, clock=world.clock, hand=guide.hand), guide


def attach(world: Any, config: Any) -> TwinHardware:
    """The SO-100 twin's buses for `config` (ports `connection.port` and `connection.leader_port`); `sweep`
    hands the follower or the leader to a person calibrating it (`sweep_hand`)."""
    follower = TwinServoBus(world, port=str(config.connection["port"]))
    leader_port = config.connection.get("leader_port")
    leader, guide = leader_bus(world, str(leader_port)) if leader_port is not None else (None, None)

    def sweep(on_leader: bool) -> None:
        bus = leader if on_leader else follower
        if bus is not None:
            bus.hand = sweep_hand()

    def no_guide(trajectory: Trajectory | None, hold: np.ndarray | None = None) -> None:
        return None

    return TwinHardware(
        follower=follower.port_handler,
        leader=leader.port_handler if leader is not None else None,
        guide=guide or no_guide,
        sweep=sweep,
    )
