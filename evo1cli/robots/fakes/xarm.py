"""A simulated xArm6 behind the interface of `xarm.wrapper.XArmAPI` (xarm-python-sdk 1.18), without the SDK.

`FakeXArmAPI` has XArmAPI's method names, signatures (the subset the driver uses), attributes and return codes,
including the SDK's quirks: non-motion calls mask a controller error (code 1) and return 0, motion calls return
1 while an error is present and 9 when the arm is not ready, targets outside the hardware joint range return -8
before anything is sent, motion commands in the wrong mode are accepted (code 0) and ignored by the controller,
`get_gripper_position` returns a bare code instead of a tuple on a gripper fault, and the constructor raises a
bare `Exception` when the controller cannot be reached.

Simulated over time (a clock can be injected): joints move towards planned targets (mode 0, at the requested
speed) or servo targets (mode 1, at the 180 deg/s joint speed limit); the mode/state machine (`set_mode` takes
effect at the next `set_state(0)`; a stop or an error leaves state 4); the gripper; forward kinematics from
UFACTORY's published modified-DH parameters; hand-guiding in teach mode (mode 2) along a scripted trajectory.
`wait=True` advances the simulated time instead of sleeping.

Beyond the SDK: `hand_guide` (a person's hand, which the rehearsal arm of `--fake` uses), `calls` (every command
received, with its time, arguments and code), and read-outs of the simulated `joints` and `gripper_position`.
Events only tests stage (controller errors, gripper faults) live with the tests.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo1cli.sim.twin.xarm6_kinematics import XARM6_MDH, xarm6_forward_kinematics  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

# xarm/x3/code.py APIState and xarm/core/config/x_config.py UxbusState
NOT_CONNECTED, OUT_OF_RANGE, HAS_ERROR, STATE_NOT_READY = -1, -8, 1, 9
WAIT_FINISH_TIMEOUT, END_EFFECTOR_HAS_FAULT = 100, 102
EMERGENCY_STOP_ERRORS = (1, 2, 3)  # controller error codes of the three emergency-stop inputs

# xArm6 joint ranges in degrees (x_config.py JOINT_LIMITS, XARM6_X4) and the gripper's pulse range.
JOINT_RANGES = ((-360, 360), (-118, 120), (-225, 11), (-360, 360), (-97, 180), (-360, 360))
GRIPPER_RANGE = (-10, 850)
MAX_JOINT_SPEED = 180.0  # deg/s
DEFAULT_JOINT_SPEED = 20.0  # deg/s, the SDK's initial last_used_joint_speed
GRIPPER_UNITS_PER_RPM_S = 0.34  # pulses per second per r/min: 5000 r/min crosses 0..850 in 0.5 s


@dataclass(frozen=True)
class FakeCall:
    """One command the fake received: simulated time, method, its arguments as passed, the code it returned,
    and whether the simulated controller acted on it (False: ignored, e.g. a servo target outside mode 1)."""

    time: float
    method: str
    arguments: dict[str, Any]
    code: int
    accepted: bool


def _api(kind: str) -> Callable:
    """SDK method wrapper: the SDK's not-connected return, the simulation advanced to now, `set` calls logged."""

    def wrap(method: Callable) -> Callable:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def call(self: FakeXArmAPI, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if not self._connected:
                    return NOT_CONNECTED if kind == "set" else (NOT_CONNECTED, "xArm is not connect")
                self._advance()
                self._accepted = True
                result = method(self, *args, **kwargs)
                if kind == "set":
                    bound = signature.bind(self, *args, **kwargs).arguments
                    bound.pop("self")
                    code = result if isinstance(result, int) else result[0]
                    self.calls.append(FakeCall(self._now(), method.__name__, bound, code, self._accepted))
                return result

        return call

    return wrap


class FakeXArmAPI:
    """Stand-in for `xarm.wrapper.XArmAPI`: `FakeXArmAPI(ip, is_radian=False)` connects at once, as the SDK does.

    Extra keyword arguments (the SDK takes **kwargs): `clock` (seconds, default time.monotonic), `reachable`
    (False: the constructor fails as it does for a wrong ip), `joints` (the initial 6 joint angles in degrees).
    """

    def __init__(
        self,
        port: str | None = None,
        is_radian: bool = False,
        do_not_open: bool = False,
        *,
        clock: Callable[[], float] = time.monotonic,
        reachable: bool = True,
        joints: Sequence[float] = (0.0,) * 6,
        **kwargs: Any,
    ):
        if is_radian:
            raise NotImplementedError("FakeXArmAPI simulates the degree interface only (is_radian=False)")
        self._port, self._clock, self._reachable = port, clock, reachable
        self._lock = threading.RLock()
        self._skipped = 0.0  # simulated seconds that wait=True calls skipped instead of sleeping
        self._t = self._now()
        self._connected = False
        self._enabled, self._estop = False, False
        self._mode, self._pending_mode, self._state = 0, 0, 4
        self._error, self._warn = 0, 0
        self._joints = np.array(joints, dtype=np.float64)
        self._plan: tuple[np.ndarray, float] | None = None  # mode 0: (target, speed deg/s)
        self._servo: np.ndarray | None = None  # mode 1 target
        self._hand: tuple[float, np.ndarray, float] | None = None  # (start time, waypoints, duration)
        self._hand_loops = False
        self._gripper = {"enabled": False, "mode": 0, "pos": 0.0, "target": 0.0, "speed": 1500.0, "error": 0}
        self._accepted = True
        self.calls: list[FakeCall] = []
        if not do_not_open:
            self.connect()

    # ------------------------------------------------------------------------------------------ properties
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def default_is_radian(self) -> bool:
        return False

    @property
    def axis(self) -> int:
        return 6

    @property
    def version(self) -> str:
        return "v2.5.0 (fake)"

    @property
    def state(self) -> int:
        with self._lock:
            self._advance()
            return self._state

    @property
    def mode(self) -> int:
        return self._mode

    @property
    def error_code(self) -> int:
        return self._error

    @property
    def warn_code(self) -> int:
        return self._warn

    @property
    def has_error(self) -> bool:
        return self._error != 0

    @property
    def has_warn(self) -> bool:
        return self._warn != 0

    @property
    def has_err_warn(self) -> bool:
        return self.has_error or self.has_warn

    @property
    def angles(self) -> list[float]:
        with self._lock:
            self._advance()
            return [*map(float, self._joints), 0.0]

    # ------------------------------------------------------------------------------------------ connection
    def connect(self, port: str | None = None, baudrate: Any = None, timeout: Any = None, axis: Any = None, **kwargs):
        if self._connected:
            return
        self._port = port or self._port
        if not self._port:
            raise Exception(f"can not connect to port/ip {self._port}")
        if not self._reachable:
            raise Exception("connect socket failed")
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    # ------------------------------------------------------------------------------------------ state
    @_api("get")
    def get_err_warn_code(self, show: bool = False, lang: str = "en") -> tuple[int, list[int]]:
        return 0, [self._error, self._warn]

    @_api("get")
    def get_state(self) -> tuple[int, int]:
        return 0, self._state

    @_api("set")
    def clean_error(self) -> int:
        if not self._estop:  # an emergency stop stays until the button is released
            self._error = 0
        return 0

    @_api("set")
    def clean_warn(self) -> int:
        self._warn = 0
        return 0

    @_api("set")
    def motion_enable(self, enable: bool = True, servo_id: int | None = None) -> int:
        if servo_id not in (None, 8):
            raise NotImplementedError("FakeXArmAPI enables all joints at once")
        self._enabled = bool(enable) and not self._estop
        if not self._enabled:
            self._stop_motion()
        return 0

    @_api("set")
    def set_mode(self, mode: int = 0, detection_param: int = 0) -> int:
        self._pending_mode = mode  # takes effect at the next set_state(0)
        return 0

    @_api("set")
    def set_state(self, state: int = 0) -> int:
        if state == 0:
            if self._error or not self._enabled:
                self._accepted = False  # the controller stays stopped; the SDK masks the error code
            else:
                self._mode = self._pending_mode
                self._stop_motion()
                self._state = 2
        elif state in (4, 6):
            self._stop_motion()
        elif state == 3:
            self._state = 3
        return 0

    # ------------------------------------------------------------------------------------------ motion
    @_api("get")
    def get_servo_angle(
        self, servo_id: int | None = None, is_radian: bool | None = None, is_real: bool = False
    ) -> tuple[int, Any]:
        self._degrees(is_radian)
        angles = [*map(float, self._joints), 0.0]  # the SDK always reports 7 axes
        return (0, angles) if servo_id in (None, 8) else (0, angles[servo_id - 1])

    @_api("set")
    def set_servo_angle(
        self,
        servo_id: int | None = None,
        angle: Sequence[float] | None = None,
        speed: float | None = None,
        mvacc: float | None = None,
        mvtime: float | None = None,
        relative: bool = False,
        is_radian: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
        radius: float | None = None,
        **kwargs: Any,
    ) -> int:
        self._degrees(is_radian)
        if servo_id not in (None, 8) or relative or angle is None:
            raise NotImplementedError("FakeXArmAPI simulates absolute moves of all joints only")
        code = self._motion_code(angle, mode=0)
        if code != 0 or not self._accepted:
            return code
        speed = DEFAULT_JOINT_SPEED if speed is None else min(float(speed), MAX_JOINT_SPEED)
        self._plan = (np.array(angle[:6], dtype=np.float64), speed)
        self._state = 1
        if not wait:
            return 0
        duration = float(np.abs(self._plan[0] - self._joints).max()) / speed
        if timeout is not None and duration > timeout:
            self._skip(timeout)
            return WAIT_FINISH_TIMEOUT
        self._skip(duration)
        return 0

    @_api("set")
    def set_servo_angle_j(
        self,
        angles: Sequence[float],
        speed: float | None = None,
        mvacc: float | None = None,
        mvtime: float | None = None,
        is_radian: bool | None = None,
        **kwargs: Any,
    ) -> int:
        self._degrees(is_radian)
        code = self._motion_code(angles, mode=1)
        if code == 0 and self._accepted:
            self._servo = np.array(angles[:6], dtype=np.float64)
        return code

    @_api("get")
    def get_forward_kinematics(
        self, angles: Sequence[float], input_is_radian: bool | None = None, return_is_radian: bool | None = None
    ) -> tuple[int, list[float]]:
        self._degrees(input_is_radian)
        self._degrees(return_is_radian)
        return 0, xarm6_forward_kinematics(list(angles)[:6])

    # ------------------------------------------------------------------------------------------ gripper
    @_api("set")
    def set_gripper_enable(self, enable: bool, **kwargs: Any) -> int:
        if self._gripper["error"]:
            return END_EFFECTOR_HAS_FAULT
        self._gripper["enabled"] = bool(enable)
        return 0

    @_api("set")
    def set_gripper_mode(self, mode: int, **kwargs: Any) -> int:
        if self._gripper["error"]:
            return END_EFFECTOR_HAS_FAULT
        self._gripper["mode"] = mode
        return 0

    @_api("set")
    def set_gripper_speed(self, speed: float, **kwargs: Any) -> int:
        if self._gripper["error"]:
            return END_EFFECTOR_HAS_FAULT
        self._gripper["speed"] = float(speed)
        return 0

    @_api("get")
    def get_gripper_position(self, **kwargs: Any) -> tuple[int, int | None] | int:
        if self._gripper["error"]:
            return END_EFFECTOR_HAS_FAULT  # sic: the SDK returns a bare code here, not (code, pos)
        return 0, round(self._gripper["pos"])

    @_api("set")
    def set_gripper_position(
        self,
        pos: float,
        wait: bool = False,
        speed: float | None = None,
        auto_enable: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> int:
        if self._mode == 0 and self._state == 1 and kwargs.get("wait_motion", True):
            self._skip(self._plan_remaining())  # the SDK waits for the arm's planned motion to end first
        grip = self._gripper
        if grip["error"]:
            return END_EFFECTOR_HAS_FAULT
        if auto_enable:
            grip["enabled"] = True
        if speed is not None:
            grip["speed"] = float(speed)
        if not grip["enabled"]:
            self._accepted = False  # a disabled gripper ignores position commands
            return 0
        grip["target"] = float(np.clip(pos, *GRIPPER_RANGE))
        if wait:
            rate = grip["speed"] * GRIPPER_UNITS_PER_RPM_S
            self._skip(abs(grip["target"] - grip["pos"]) / rate)
        return 0

    @_api("get")
    def get_gripper_err_code(self, **kwargs: Any) -> tuple[int, int]:
        return 0, self._gripper["error"]

    @_api("set")
    def clean_gripper_error(self, **kwargs: Any) -> int:
        self._gripper["error"] = 0
        return 0

    # ------------------------------------------------------------------------------------------ the world
    def hand_guide(self, waypoints: Sequence[Sequence[float]], duration_s: float, loop: bool = False) -> None:
        """A hand moves the arm through `waypoints` (6 joint angles each, or 7 with the gripper), linearly over
        `duration_s` from now (and again, with `loop`). The joints follow only in teach mode (mode 2, state
        ready); otherwise the servos hold against the hand."""
        path = np.asarray(waypoints, dtype=np.float64)
        if path.ndim != 2 or path.shape[1] not in (6, 7) or len(path) < 2:
            raise ValueError("waypoints must be at least 2 rows of 6 or 7 values")
        with self._lock:
            self._advance()
            self._hand = (self._now(), path, float(duration_s))
            self._hand_loops = loop

    @property
    def joints(self) -> np.ndarray:
        """The simulated joint angles (6, deg) right now."""
        with self._lock:
            self._advance()
            return self._joints.copy()

    @property
    def gripper_position(self) -> float:
        with self._lock:
            self._advance()
            return self._gripper["pos"]

    # ------------------------------------------------------------------------------------------ simulation
    def _now(self) -> float:
        return self._clock() + self._skipped

    def _skip(self, seconds: float) -> None:
        self._skipped += max(0.0, seconds)
        self._advance()

    def _degrees(self, is_radian: bool | None) -> None:
        if is_radian:
            raise NotImplementedError("FakeXArmAPI simulates the degree interface only")

    def _motion_code(self, angles: Sequence[float], mode: int) -> int:
        """What a motion command returns before it moves anything (and `_accepted` False if it will be ignored)."""
        values = list(angles)
        if len(values) < 6:
            raise AssertionError("param angles error")
        for (lo, hi), value in zip(JOINT_RANGES, values[:6], strict=True):
            if not lo - 0.1 <= value <= hi + 0.1:  # the SDK's own range check, before sending
                return OUT_OF_RANGE
        if self._error:
            return HAS_ERROR
        if self._state not in (1, 2):
            return STATE_NOT_READY
        if self._mode != mode:
            log.warning("The mode may be incorrect, just as a reminder, mode: %s (%s)", mode, self._mode)
            self._accepted = False
        return 0

    def _stop_motion(self) -> None:
        self._plan, self._servo = None, None
        self._state = 4

    def _plan_remaining(self) -> float:
        if self._plan is None:
            return 0.0
        target, speed = self._plan
        return float(np.abs(target - self._joints).max()) / speed

    def _advance(self) -> None:
        now = self._now()
        dt, self._t = max(0.0, now - self._t), now
        ready = self._state in (1, 2) and self._enabled and not self._error
        if ready and self._mode == 0 and self._plan is not None:
            target, speed = self._plan
            remaining = target - self._joints
            distance = float(np.abs(remaining).max())
            if distance <= speed * dt:
                self._joints, self._plan, self._state = target.copy(), None, 2
            else:
                self._joints = self._joints + remaining * (speed * dt / distance)
        elif ready and self._mode == 1 and self._servo is not None:
            step = np.clip(self._servo - self._joints, -MAX_JOINT_SPEED * dt, MAX_JOINT_SPEED * dt)
            self._joints = self._joints + step
            self._state = 1 if np.any(self._joints != self._servo) else 2
        elif ready and self._mode == 2 and self._hand is not None:
            start, path, duration = self._hand
            phase = (now - start) / duration
            phase = phase % 1.0 if self._hand_loops else min(max(phase, 0.0), 1.0)
            progress = phase * (len(path) - 1)
            i = min(int(progress), len(path) - 2)
            point = path[i] + (path[i + 1] - path[i]) * (progress - i)
            self._joints = point[:6].copy()
            if len(point) == 7:
                self._gripper["pos"] = self._gripper["target"] = float(point[6])
        grip = self._gripper
        if grip["enabled"] and not grip["error"] and not self._estop:
            step = grip["speed"] * GRIPPER_UNITS_PER_RPM_S * dt
            grip["pos"] += float(np.clip(grip["target"] - grip["pos"], -step, step))


# A person's hand-guided demonstration, looped: out from the zero pose and back, closing the gripper.
REHEARSAL_HAND = ((0, 0, 0, 0, 0, 0, 0), (25, -15, -20, 10, 15, -10, 600), (0, 0, 0, 0, 0, 0, 0))
REHEARSAL_PERIOD_S = 6.0


def rehearsal_api(port: str | None = None, is_radian: bool = False, **kwargs: Any) -> FakeXArmAPI:
    """What `connection.fake: true` connects to: a FakeXArmAPI whose hand repeats `REHEARSAL_HAND` in teach mode."""
    api = FakeXArmAPI(port, is_radian, **kwargs)
    api.hand_guide(REHEARSAL_HAND, REHEARSAL_PERIOD_S, loop=True)
    return api
