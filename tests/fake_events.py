"""What only tests do to the simulated hardware of `evo1cli.robots.fakes`: controller errors and servo faults
injected from outside, corrupted replies, a manual clock, scripted hands, and the command log by method.

The fakes themselves simulate what the SDKs and the hardware do on their own; these events are what the world
does to them (a collision, an emergency-stop button, line noise), so they live with the tests that stage them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

from evo1cli.robots.fakes.feetech import STATUS, TORQUE_ENABLE, UNLOADING_CONDITION, FakeFeetechBus, FakeSTS3215
from evo1cli.robots.fakes.xarm import EMERGENCY_STOP_ERRORS, FakeCall, FakeXArmAPI


# ---------------------------------------------------------------------------------------------- xArm
def commands(api: FakeXArmAPI, method: str) -> list[FakeCall]:
    """The calls of `method` the simulated xArm received so far, in order."""
    return [c for c in api.calls if c.method == method]


def inject_error(api: FakeXArmAPI, code: int) -> None:
    """A controller error now: 1-3 emergency stop (motors off until `release_emergency_stop`), 22 self-collision,
    23 joint limit, 31 collision, ... The arm stops (state 4) and refuses motion until cleared."""
    with api._lock:
        api._advance()
        api._error = code
        api._stop_motion()
        if code in EMERGENCY_STOP_ERRORS:
            api._estop, api._enabled = True, False


def release_emergency_stop(api: FakeXArmAPI) -> None:
    with api._lock:
        api._estop = False


def inject_gripper_error(api: FakeXArmAPI, code: int) -> None:
    """A gripper fault (e.g. 11 overcurrent): the gripper disables itself, as the SDK reports it."""
    with api._lock:
        api._advance()
        api._gripper.update(error=code, enabled=False)


# ---------------------------------------------------------------------------------------------- Feetech
class FakeClock:
    """Manual time for the simulation: tests advance it instead of sleeping."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fault(servo: FakeSTS3215, bits: int) -> None:
    """Raise status bits (e.g. OVERLOAD); an unloading condition drops the torque, as the servo does."""
    servo.faults |= bits
    servo.memory[STATUS] = servo.faults
    if bits & servo.memory[UNLOADING_CONDITION]:
        servo.memory[TORQUE_ENABLE] = 0


def corrupt_next_replies(bus: FakeFeetechBus, servo_id: int, count: int = 1) -> None:
    """Line noise: the servo's next `count` replies arrive with a bad checksum."""
    bus.servos[servo_id].corrupt_replies += count


def waypoint_hand(waypoints: Sequence[tuple[float, Mapping[int, float]]]) -> Callable[[float], dict[int, float]]:
    """A hand through `(time, {servo id: actual position})` waypoints, linear in between, held after the last."""

    def hand(t: float) -> dict[int, float]:
        if t <= waypoints[0][0]:
            return dict(waypoints[0][1])
        for (t0, p0), (t1, p1) in itertools.pairwise(waypoints):
            if t <= t1:
                f = (t - t0) / (t1 - t0)
                return {i: p0[i] + f * (p1[i] - p0[i]) for i in p0}
        return dict(waypoints[-1][1])

    return hand


# ---------------------------------------------------------------------------------------------- keys
class ScriptedKeys:
    """Keys pressed at given ticks of a teleoperation session: {tick: key}."""

    def __init__(self, at: dict[int, str]):
        self.at, self.tick = at, 0

    def poll(self) -> str | None:
        self.tick += 1
        return self.at.get(self.tick)
