"""The xArm6 twin's hardware: `FakeXArmAPI`'s SDK behaviour over the MuJoCo arm of `xarm6-cube-bowl`.

    world = TwinWorld(open_scene("xarm6"), {"image_1": (224, 224), "image_2": (224, 224)})
    hardware = attach(world, config)
    arm = XArm6(config, api_factory=hardware.follower)      # the real driver, unchanged
    hardware.guide(trajectory, None)                         # a person's hand moves the arm (in teach mode)

The fake's own motion logic (planned moves, servo targets at the joint speed limit, the hand in teach mode,
the gripper's speed) produces the commanded set-point; the set-point becomes the twin's actuator targets
(degrees -> radians, pulses -> finger opening), physics catches up with the clock, and what the SDK reports
(`angles`, `get_servo_angle`, `get_gripper_position`, `joints`, `gripper_position`) is measured on the twin:
a gripper closed on the cube reports the cube's width, not 0. `wait=True` still skips time instead of
sleeping, as in the fake: the world's clock skips with it (in steps short enough that the world never counts
them as lag), so physics runs through the skipped interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evo1cli.robots.base import RobotConfig, RobotError
from evo1cli.robots.fakes.twin import TwinHardware
from evo1cli.robots.fakes.xarm import GRIPPER_RANGE, FakeXArmAPI
from evo1cli.sim.twin.scene import Trajectory
from evo1cli.sim.twin.world import TwinWorld

PULSES_OPEN = 850.0  # the xArm Gripper fully open
HAND_HZ = 30.0  # a guided trajectory is resampled to waypoints at this rate
SETTLE_S, SETTLE_STEP_S = 1.0, 0.02  # a wait=True call also waits (skips) until the twin stops moving
SKIP_CHUNK_S = 0.1  # a wait=True skip advances the world in steps this long (below the world's max_lag_s)


class SkippingClock:
    """The world's clock plus the time that `wait=True` calls skipped (shared by every API on the world)."""

    def __init__(self, base: Callable[[], float]):
        self.base, self.skipped = base, 0.0

    def __call__(self) -> float:
        return self.base() + self.skipped


def _clock_of(world: TwinWorld) -> SkippingClock:
    if not isinstance(world.clock, SkippingClock):
        world.clock = SkippingClock(world.clock)
    return world.clock


class TwinXArmAPI(FakeXArmAPI):
    """`FakeXArmAPI` whose joints and gripper are the twin's: `TwinXArmAPI(world, ip, is_radian=False)`."""

    def __init__(self, world: TwinWorld, port: str | None = None, is_radian: bool = False, **kwargs: Any):
        if world.scene.robot != "xarm6":
            raise RobotError(f"TwinXArmAPI needs an xarm6 scene, got {world.scene.name}")
        kwargs.pop("clock", None)
        kwargs.pop("joints", None)
        self.world = world
        self.finger_open = float(world.scene.home[-1])
        clock = _clock_of(world)
        measured = world.joint_positions()
        self._placement = world.placement
        super().__init__(port, is_radian, clock=clock, joints=np.degrees(measured[:6]), **kwargs)
        self._gripper["pos"] = self._gripper["target"] = self.pulses(measured[6])

    # ------------------------------------------------------------------------------------------ units
    def pulses(self, finger: float) -> float:
        """Finger opening (m) -> gripper pulses (0 closed .. 850 open)."""
        return float(finger) / self.finger_open * PULSES_OPEN

    def finger(self, pulses: float) -> float:
        """Gripper pulses -> finger opening (m), within the finger's travel."""
        return float(np.clip(pulses, 0.0, PULSES_OPEN)) / PULSES_OPEN * self.finger_open

    def hardware_units(self, q: Sequence[float]) -> np.ndarray:
        """MJCF units (6 radians, finger metres) -> the SDK's (6 degrees, pulses)."""
        q = np.asarray(q, dtype=np.float64)
        return np.array([*np.degrees(q[:6]), self.pulses(q[6])])

    # ------------------------------------------------------------------------------------------ read-outs
    def _measured(self) -> tuple[list[float], float]:
        """The joints in degrees and the gripper in pulses, within the range a real xArm Gripper reports (the
        twin's fingers can overshoot their travel for a moment: read raw, up to 929 pulses)."""
        q = self.world.joint_positions()
        return [float(v) for v in np.degrees(q[:6])], float(np.clip(self.pulses(q[6]), *GRIPPER_RANGE))

    @property
    def angles(self) -> list[float]:
        with self._lock:
            self._advance()
            return [*self._measured()[0], 0.0]

    def get_servo_angle(
        self, servo_id: int | None = None, is_radian: bool | None = None, is_real: bool = False
    ) -> tuple[int, Any]:
        with self._lock:
            reply = super().get_servo_angle(servo_id, is_radian, is_real)
            if reply[0] != 0:
                return reply
            angles = [*self._measured()[0], 0.0]  # the SDK always reports 7 axes
            return (0, angles) if servo_id in (None, 8) else (0, angles[servo_id - 1])

    def get_gripper_position(self, **kwargs: Any) -> tuple[int, int | None] | int:
        with self._lock:
            reply = super().get_gripper_position(**kwargs)
            if not isinstance(reply, tuple) or reply[0] != 0:
                return reply  # not connected, or the bare code of a gripper fault
            return 0, round(self._measured()[1])

    @property
    def joints(self) -> np.ndarray:
        with self._lock:
            self._advance()
            return np.array(self._measured()[0])

    @property
    def gripper_position(self) -> float:
        with self._lock:
            self._advance()
            return self._measured()[1]

    @property
    def setpoint(self) -> np.ndarray:
        """The commanded set-point (6 degrees, pulses) the controller drives the twin's actuators to."""
        with self._lock:
            self._advance()
            return np.array([*self._joints, self._gripper["pos"]])

    # ------------------------------------------------------------------------------------------ the hand
    def release_hand(self) -> None:
        """The hand lets go: in teach mode the arm stays where it was left."""
        with self._lock:
            self._advance()
            self._hand = None

    # ------------------------------------------------------------------------------------------ simulation
    def _now(self) -> float:
        return self._clock()

    def _skip(self, seconds: float) -> None:
        """The set-point's `seconds`, then as long as the twin still moves (up to `SETTLE_S`): a real wait=True
        returns once the arm or the gripper has arrived, not when its plan's time is up."""
        clock = self._clock
        left = max(0.0, seconds)
        while left > 0:
            step = min(left, SKIP_CHUNK_S)
            clock.skipped += step
            left -= step
            self._advance()
        before = np.array([*self._measured()[0], self._measured()[1] / 10])
        for _ in range(round(SETTLE_S / SETTLE_STEP_S)):
            clock.skipped += SETTLE_STEP_S
            self._advance()
            now = np.array([*self._measured()[0], self._measured()[1] / 10])
            moving, before = float(np.abs(now - before).max()) > 0.02, now
            if not moving:
                break

    def _advance(self) -> None:
        world = self.world
        with world.lock:
            world.sync()  # physics up to now under the targets in force until now
            if world.placement is not self._placement:  # a new episode put the arm back home
                self._placement = world.placement
                measured = world.joint_positions()
                self._joints = np.degrees(measured[:6])
                self._plan, self._servo, self._hand = None, None, None
                self._state = 2 if self._state == 1 else self._state
                self._gripper["pos"] = self._gripper["target"] = self.pulses(measured[6])
            super()._advance()  # the controller's set-point now
            grip = float(np.clip(self._gripper["pos"], *GRIPPER_RANGE))
            world.set_targets(np.array([*np.radians(self._joints), self.finger(grip)]))


def attach(world: TwinWorld, config: RobotConfig) -> TwinHardware:
    """The xArm6 twin's hardware for the session: `follower` is the driver's `api_factory` (a `TwinXArmAPI` on
    `world`), `guide` moves the arm by hand (teach mode) along a trajectory or holds it at a pose."""
    if config.robot != "xarm6" or world.scene.robot != "xarm6":
        raise RobotError(f"the xArm6 twin needs an xarm6 config and scene, got {config.robot} / {world.scene.name}")
    apis: list[TwinXArmAPI] = []

    def follower(port: str | None = None, is_radian: bool = False, **kwargs: Any) -> TwinXArmAPI:
        api = TwinXArmAPI(world, port, is_radian, **kwargs)
        apis.append(api)
        return api

    def guide(trajectory: Trajectory | None, pose: np.ndarray | None) -> None:
        if not apis:
            raise RobotError("the twin's arm is not connected yet: nothing to guide")
        api = apis[-1]
        if trajectory is not None:
            count = max(2, math.ceil(trajectory.duration * HAND_HZ) + 1)
            # the hand moves the six joints; the gripper is motor-driven (commanded: `g` in teach mode)
            waypoints = [api.hardware_units(trajectory.at(i / HAND_HZ))[:6] for i in range(count)]
            api.hand_guide(waypoints, (count - 1) / HAND_HZ)
        elif pose is not None:
            point = api.hardware_units(pose)[:6]
            api.hand_guide([point, point], 1.0)
        else:
            api.release_hand()

    return TwinHardware(follower=follower, leader=None, guide=guide)
