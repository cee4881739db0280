"""UFACTORY xArm6 with the xArm Gripper, over the vendor SDK (`xarm.wrapper.XArmAPI`, package xarm-python-sdk).

Units: joint angles in degrees, the gripper in its native pulses (0..850). The arm is driven in servo mode
(mode 1): `send_joints` streams absolute targets with `set_servo_angle_j`, which the controller executes at
once, so every target must already be safe (`SafetyLayer` makes it so). `home()` is the one planned move
(mode 0, `set_servo_angle(wait=True)`). Teach mode (mode 2) lets a person guide the arm by hand.

Every SDK return code is checked: a non-zero one becomes a `RobotError` that names the call, the SDK code and,
when the controller reports one, its error (emergency stop, collision, joint limit, ...) in plain words.

The SDK is imported only when a real arm is connected. Any stand-in comes in as `api_factory`: with
`connection: {fake: true}`, `evo1cli.robots.session.make_arm` passes the simulated `XArmAPI` in (this driver
never imports it), and tests pass their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import Arm, RobotConfig, RobotError

log = logging.getLogger(__name__)

MODE_POSITION, MODE_SERVO, MODE_TEACH = 0, 1, 2
STATE_START, STATE_STOP = 0, 4
GRIPPER_DEADBAND = 0.5  # pulses: a smaller change is not re-sent to the gripper

# SDK return codes (xarm/x3/code.py APIState), in plain words.
API_CODES = {
    -1: "not connected",
    -2: "not ready: motors not enabled or state not set",
    -7: "joint limit",
    -8: "target outside the joint range",
    -9: "the arm stopped (stop or emergency stop)",
    1: "the controller has an error",
    2: "the controller has a warning",
    3: "no reply from the controller",
    9: "not ready to move: the arm is stopped",
    100: "timed out waiting for the motion to finish",
    102: "the gripper has a fault",
    103: "the gripper is not enabled",
}

# Controller errors (xarm/core/config/x_code.py ControllerErrorCodeMap) worth naming plainly, with what to do.
CONTROLLER_ERRORS = {
    1: ("emergency stop", "the button on the control box is pressed: release it, then reconnect"),
    2: ("emergency stop", "the control box's emergency-stop input is triggered: clear it, then reconnect"),
    3: ("emergency stop", "the three-state switch's stop is pressed: release it, then reconnect"),
    21: ("kinematics error", "the target has no solution"),
    22: ("self-collision", "move the arm clear by hand in teach mode or with UFACTORY Studio, then reconnect"),
    23: ("joint limit", "a joint passed its limit: move it back with UFACTORY Studio, then reconnect"),
    24: ("joint speed limit", "a command asked for more than the joints' top speed"),
    31: ("collision", "the arm hit something: clear the way, then reconnect"),
    35: ("safety boundary", "the arm reached the controller's safety boundary"),
    38: ("abnormal joint angle", "check the arm with UFACTORY Studio"),
    60: ("servo-mode speed limit", "servo targets moved the tool faster than allowed"),
}
SERVO_ERRORS = range(10, 18)  # 10: a servo motor, 11-17: servo motor 1-7


def describe_controller_error(code: int) -> str:
    """`C31 collision (Collision Caused Abnormal Current): clear the way, then reconnect` and the like."""
    name, hint = CONTROLLER_ERRORS.get(code, ("servo motor error" if code in SERVO_ERRORS else "", ""))
    title = _sdk_title(code)
    text = f"C{code} {name}".rstrip()
    if title and title.lower() != name:
        text += f" ({title})"
    if not name and not title:
        text += " (see UFACTORY's controller error table)"
    return f"{text}: {hint}" if hint else text


def _sdk_title(code: int) -> str:
    """The SDK's English title of a controller error, when the SDK is installed."""
    try:
        from xarm.core.config.x_code import ControllerError
    except ImportError:
        return ""
    return str(ControllerError(code).title["en"])


def _sdk_factory() -> Callable[..., Any]:
    try:
        from xarm.wrapper import XArmAPI
    except ImportError:
        raise RobotError(
            "the xArm SDK is not installed: pip install xarm-python-sdk (or set connection.fake: true)"
        ) from None
    return XArmAPI


@dataclass(frozen=True)
class XArm6Connection:
    """The `connection` section of an xArm6 robot config."""

    ip: str | None = None  # the control box's address; required unless fake
    fake: bool = False  # FakeXArmAPI instead of the SDK
    sim: str | None = None  # a digital twin scene under the simulated hardware (set by --sim)
    home_speed: float = 30.0  # deg/s of the planned move home (the joints allow up to 180)
    gripper_speed: float = 5000.0  # r/min, the SDK accepts 1000..5000

    @classmethod
    def from_config(cls, config: RobotConfig) -> XArm6Connection:
        raw = dict(config.connection)

        def fail(key: str, message: str) -> Evo1Error:
            return Evo1Error(message, path=config.source, field=f"connection.{key}")

        known = [f.name for f in fields(cls)]
        for key in raw:
            if key not in known:
                raise fail(key, f"unknown key (xArm6 connection keys: {', '.join(known)})")
        if not isinstance(raw.get("fake", False), bool):
            raise fail("fake", f"expected true or false, got {raw['fake']!r}")
        if raw.get("ip") is not None and not (isinstance(raw["ip"], str) and raw["ip"]):
            raise fail("ip", f"expected an address such as 192.168.1.222, got {raw['ip']!r}")
        if raw.get("sim") is not None and not isinstance(raw["sim"], str):
            raise fail("sim", f"expected a scene name, got {raw['sim']!r}")
        if raw.get("ip") is None and not raw.get("fake", False):
            raise fail("ip", "the control box's address is required (or fake: true)")
        for key, lo, hi in (("home_speed", 0, 180), ("gripper_speed", 1000, 5000)):
            value = raw.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
                raise fail(key, f"expected a number in ({lo}, {hi}], got {value!r}")
        return cls(**raw)


class XArm6(Arm):
    """An xArm6 and its gripper: 7 values, 6 joint angles (deg) then the gripper position (0..850)."""

    def __init__(self, config: RobotConfig, api_factory: Callable[..., Any] | None = None):
        super().__init__(config)
        if config.robot != "xarm6" or self.dof != 7:
            raise RobotError(f"XArm6 needs an xarm6 configuration with 7 joints, got {config.robot} with {self.dof}")
        self.connection = XArm6Connection.from_config(config)
        self._factory = api_factory
        self.api: Any = None
        self._gripper_sent: float | None = None

    @property
    def connected(self) -> bool:
        return self.api is not None and bool(self.api.connected)

    # ------------------------------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Connect, clear recoverable errors, enable the motors and the gripper, enter servo mode. No motion."""
        if self.api is not None:
            return
        conn = self.connection
        ip = conn.ip or "fake"
        if self._factory is not None:
            factory = self._factory
        elif conn.fake:
            raise RobotError(
                "connection.fake is true but no simulated API was passed in: open the arm with "
                "evo1cli.robots.session.make_arm"
            )
        else:
            factory = _sdk_factory()
        try:
            api = factory(ip, is_radian=False)
        except Exception as err:  # the SDK raises a bare Exception ("connect socket failed")
            raise RobotError(f"cannot connect to the xArm at {ip}: {err}") from err
        if not api.connected:
            raise RobotError(f"cannot connect to the xArm at {ip}")
        self.api = api
        try:
            self._clear_errors()
            self._call("motion_enable", True)
            self._call("set_gripper_mode", 0)
            self._call("set_gripper_enable", True)
            self._call("set_gripper_speed", conn.gripper_speed)
            self._enter(MODE_SERVO)
        except BaseException:
            self.api = None
            api.disconnect()
            raise
        log.info("xArm connected at %s, servo mode", ip)

    def disconnect(self) -> None:
        """Stop (the xArm's brakes hold the pose) and close. The gripper stays enabled so it keeps its grip."""
        api, self.api = self.api, None
        if api is None:
            return
        try:
            if api.connected:
                self._check(api.set_state(STATE_STOP), "set_state(4)", api)
        except RobotError as err:
            log.error("while disconnecting: %s", err)
        finally:
            api.disconnect()
            self._gripper_sent = None

    # ------------------------------------------------------------------------------------------ motion
    def home(self) -> None:
        """Planned move to `config.home` (mode 0, `home_speed`), gripper too, then back to servo mode."""
        home = self.config.home
        self._enter(MODE_POSITION)
        speed = self.connection.home_speed
        self._call("set_servo_angle", angle=list(home[:6]), speed=speed, is_radian=False, wait=True)
        self._call("set_gripper_position", home[6], wait=True)
        self._gripper_sent = home[6]
        self._enter(MODE_SERVO)

    def read_joints(self) -> np.ndarray:
        code, angles = self._required().get_servo_angle(is_radian=False)
        self._check(code, "get_servo_angle")
        if self.api.error_code:  # reads succeed while the controller is in error: report it here
            raise RobotError(f"xArm: {describe_controller_error(self.api.error_code)}", code=self.api.error_code)
        reply = self.api.get_gripper_position()
        code, position = reply if isinstance(reply, tuple) else (reply, None)  # a bare code on a gripper fault
        self._check(code, "get_gripper_position")
        if position is None:
            raise RobotError("xArm gripper: no position reported (is the gripper connected?)")
        return np.array([*angles[:6], position], dtype=np.float64)  # the SDK reports 7 axes; an xArm6 has 6

    def send_joints(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (7,) or not np.all(np.isfinite(target)):
            raise RobotError(f"xArm target must be 7 finite values, got {target!r}")
        self._call("set_servo_angle_j", target[:6].tolist(), is_radian=False)
        gripper = float(target[6])
        if self._gripper_sent is None or abs(gripper - self._gripper_sent) >= GRIPPER_DEADBAND:
            self._call("set_gripper_position", gripper, wait=False)
            self._gripper_sent = gripper

    def stop(self) -> None:
        """`set_state(4)`: halt now; the arm holds its pose. A no-op when not connected."""
        if self.connected:
            self._check(self.api.set_state(STATE_STOP), "set_state(4)")

    def resume(self) -> None:
        """Back to servo mode after `stop()`. A controller error is not cleared here: it needs a person."""
        err = self._controller_error()
        if err:
            raise RobotError(f"xArm cannot resume: {describe_controller_error(err)}", code=err)
        self._enter(MODE_SERVO)
        self._gripper_sent = None

    def teach_mode(self, enabled: bool) -> None:
        """Hand-guiding (mode 2, gravity compensated) on; off returns to servo mode at the pose left by hand."""
        self._enter(MODE_TEACH if enabled else MODE_SERVO)

    def forward_kinematics(self, joints: np.ndarray) -> np.ndarray | None:
        angles = [float(v) for v in np.asarray(joints, dtype=np.float64)[:6]]
        code, pose = self._required().get_forward_kinematics(angles, input_is_radian=False, return_is_radian=False)
        self._check(code, "get_forward_kinematics")
        return np.array(pose[:3], dtype=np.float64)

    # ------------------------------------------------------------------------------------------ helpers
    def _required(self) -> Any:
        if self.api is None:
            raise RobotError("xArm is not connected: call connect() first")
        return self.api

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call an SDK method that returns a code; non-zero raises."""
        self._check(getattr(self._required(), method)(*args, **kwargs), method)

    def _enter(self, mode: int) -> None:
        """`set_mode(mode)` + `set_state(0)`, then check the arm is really ready (the SDK masks errors here)."""
        self._call("set_mode", mode)
        self._call("set_state", STATE_START)
        code, state = self.api.get_state()
        self._check(code, "get_state")
        if state >= STATE_STOP:
            raise self._failure(9, f"set_mode({mode}) + set_state(0)", self.api)

    def _clear_errors(self) -> None:
        code, (err, warn) = self.api.get_err_warn_code()
        self._check(code, "get_err_warn_code")
        if warn:
            log.warning("xArm controller warning %s: cleaning it", warn)
            self._call("clean_warn")
        if err:
            log.warning("xArm controller error %s: cleaning it", describe_controller_error(err))
            self._call("clean_error")
            err = self._controller_error()
            if err:
                raise RobotError(f"xArm: {describe_controller_error(err)}", code=err)
        code, gripper_err = self.api.get_gripper_err_code()
        self._check(code, "get_gripper_err_code")
        if gripper_err:
            log.warning("xArm gripper error %s: cleaning it", gripper_err)
            self._call("clean_gripper_error")

    def _controller_error(self) -> int:
        code, (err, _warn) = self._required().get_err_warn_code()
        self._check(code, "get_err_warn_code")
        return int(err)

    def _check(self, code: int, action: str, api: Any = None) -> None:
        if code != 0:
            raise self._failure(code, action, api or self.api)

    @staticmethod
    def _failure(code: int, action: str, api: Any) -> RobotError:
        """The error for SDK `code` from `action`, naming the controller's error when there is one."""
        message = f"xArm {action} failed (code {code}: {API_CODES.get(code, 'see the SDK API codes')})"
        err = 0
        if api is not None and api.connected and code != -1:
            reply = api.get_err_warn_code()
            err = reply[1][0] if reply[0] == 0 else 0
        if err:
            message += f": {describe_controller_error(err)}"
        return RobotError(message, code=err or code)
