"""Robot configuration files: one YAML file per robot setup, checked before anything moves.

    robot: xarm6                      # xarm6 | so100
    joints: [j1, j2, j3, j4, j5, j6, gripper]
    connection: {ip: 192.168.1.222}   # the driver's settings (it checks them); `fake: true`: simulated SDK
    limits:
      lower: [...]                    # per joint, robot units
      upper: [...]
      max_step: [...]                 # largest change per control tick
      workspace_lower: [x, y, z]      # optional end-effector box in mm (needs forward kinematics)
      workspace_upper: [x, y, z]
    home: [...]
    control_hz: 30
    action_steps: 25
    watchdog_s: 0.5
    cameras:                          # name -> settings; `cameras.wrist.device=4` overrides one
      base: {device: 0, width: 640, height: 480, fps: 30}

The defaults for each robot ship in `evo1cli/robots/configs/`. An error names the file and the dotted
field on one line: ``xarm6.yaml: limits.upper[1]: ...``. `--set key.path=value` overrides go through the
same checks.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import CameraConfig, Limits, RobotConfig
from evo1cli.yamlconfig import YamlReader, apply_overrides, read_yaml, show

CONFIG_DIR = Path(__file__).parent / "configs"

ROBOT_DOF = {"xarm6": 7, "so100": 6}  # arm joints + gripper: what each driver streams

# What the hardware can reach, per joint (robot units): configured limits must lie inside. xArm6: UFACTORY's
# joint ranges in degrees (the widest variant) and the gripper's 0..850 pulses (the SDK accepts -10..850);
# SO-100: LeRobot 0.3's normalised ranges (-100..100 for body joints, 0..100 for the gripper).
HARDWARE_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "xarm6": ((-360, 360), (-118, 120), (-225, 11), (-360, 360), (-97, 180), (-360, 360), (-10, 850)),
    "so100": ((-100, 100),) * 5 + ((0, 100),),
}

SO100_DEGREE_RANGE = (-180, 180)  # body joints with `connection.use_degrees: true` (LeRobot's use_degrees)

# The `connection:` section belongs to the driver: each has a `<Robot>Connection.from_config(config)` that checks
# it (unknown keys are errors, so that a typo such as `fkae: true` cannot reach the real arm). It runs at load
# time so that a bad value is reported with the file, like any other field.
CONNECTION_CHECKS = {
    "xarm6": ("evo1cli.robots.xarm6", "XArm6Connection"),
    "so100": ("evo1cli.robots.so100", "SO100Connection"),
}

TOP_KEYS = ("robot", "joints", "connection", "limits", "home", "control_hz", "action_steps", "watchdog_s", "cameras")
LIMIT_KEYS = ("lower", "upper", "max_step", "workspace_lower", "workspace_upper")
CAMERA_KEYS = ("device", "width", "height", "fps", "max_age_s")


def default_config_path(robot: str) -> Path:
    """The packaged default configuration of `robot` (xarm6 | so100)."""
    if robot not in ROBOT_DOF:
        raise Evo1Error(f"unknown robot {robot!r} (expected one of: {', '.join(ROBOT_DOF)})", field="robot")
    return CONFIG_DIR / f"{robot}.yaml"


def load_robot_config(
    path: str | Path, overrides: Sequence[str] | None = None, robot: str | None = None
) -> RobotConfig:
    """Read, override (`key.path=value`) and check a robot configuration file.

    `robot`, when given, is the robot the caller drives: a file for another robot is an error.
    """
    path = Path(path)
    raw = read_yaml(path, "robot configuration")
    reader = _Reader(path)
    raw = apply_overrides(reader.mapping(raw, ""), list(overrides or []), path)
    config = parse_robot_config(raw, path)
    if robot is not None and config.robot != robot:
        raise reader.error("robot", f"this file configures {config.robot!r}, not {robot!r}")
    return config


def parse_robot_config(raw: dict[str, Any], source: str | Path | None = None) -> RobotConfig:
    """A checked `RobotConfig` from a parsed YAML mapping; errors name `source` and the field."""
    r = _Reader(source)
    raw = r.mapping(raw, "")
    r.only(raw, "", TOP_KEYS)
    for key in ("robot", "joints", "limits", "home"):
        if key not in raw:
            raise r.error(key, "missing")

    robot = r.string(raw["robot"], "robot")
    if robot not in ROBOT_DOF:
        raise r.error("robot", f"unknown robot {robot!r} (expected one of: {', '.join(ROBOT_DOF)})")
    joints = _joint_names(r, raw["joints"], ROBOT_DOF[robot])
    n = len(joints)
    connection = dict(r.mapping(raw.get("connection"), "connection"))
    ranges = _hardware_ranges(robot, connection)

    limits_raw = r.mapping(raw["limits"], "limits")
    r.only(limits_raw, "limits", LIMIT_KEYS)
    for key in ("lower", "upper", "max_step"):
        if key not in limits_raw:
            raise r.error(f"limits.{key}", "missing")
    lower = r.vector(limits_raw["lower"], "limits.lower", n)
    upper = r.vector(limits_raw["upper"], "limits.upper", n)
    max_step = r.vector(limits_raw["max_step"], "limits.max_step", n)
    for i, name in enumerate(joints):
        lo, hi = ranges[i]
        if lower[i] < lo:
            raise r.error(f"limits.lower[{i}]", f"{name}: {lower[i]:g} is beyond what the {robot} can reach ({lo:g})")
        if upper[i] > hi:
            raise r.error(f"limits.upper[{i}]", f"{name}: {upper[i]:g} is beyond what the {robot} can reach ({hi:g})")
        if not lower[i] < upper[i]:
            message = f"{name}: upper ({upper[i]:g}) must be greater than lower ({lower[i]:g})"
            raise r.error(f"limits.upper[{i}]", message)
        if not max_step[i] > 0:
            raise r.error(f"limits.max_step[{i}]", f"{name}: must be > 0, got {max_step[i]:g}")
    ws_lower, ws_upper = (limits_raw.get(k) for k in ("workspace_lower", "workspace_upper"))
    if (ws_lower is None) != (ws_upper is None):
        missing = "workspace_upper" if ws_upper is None else "workspace_lower"
        raise r.error(f"limits.{missing}", "the workspace box needs both workspace_lower and workspace_upper")
    if ws_lower is not None:
        ws_lower = r.vector(ws_lower, "limits.workspace_lower", 3, "x, y, z in mm")
        ws_upper = r.vector(ws_upper, "limits.workspace_upper", 3, "x, y, z in mm")
        for i, axis in enumerate("xyz"):
            if not ws_lower[i] < ws_upper[i]:
                raise r.error(f"limits.workspace_upper[{i}]", f"{axis}: upper must be greater than lower")
    limits = Limits(lower, upper, max_step, ws_lower, ws_upper)

    home = r.vector(raw["home"], "home", n)
    for i, name in enumerate(joints):
        if not lower[i] <= home[i] <= upper[i]:
            raise r.error(f"home[{i}]", f"{name} = {home[i]:g} is outside limits [{lower[i]:g}, {upper[i]:g}]")

    control_hz = r.positive(raw.get("control_hz", 30.0), "control_hz")
    action_steps = r.integer(raw.get("action_steps", 25), "action_steps", minimum=1)
    watchdog_s = r.positive(raw.get("watchdog_s", 0.5), "watchdog_s")
    if watchdog_s < 2.0 / control_hz:
        message = f"must be at least two control ticks ({2.0 / control_hz:.3f} s), got {watchdog_s:g}"
        raise r.error("watchdog_s", message)

    config = RobotConfig(
        robot=robot,
        joints=joints,
        limits=limits,
        home=home,
        control_hz=control_hz,
        action_steps=action_steps,
        watchdog_s=watchdog_s,
        cameras=_cameras(r, raw.get("cameras")),
        connection=connection,
        source=None if source is None else str(source),
    )
    module, name = CONNECTION_CHECKS[robot]
    getattr(importlib.import_module(module), name).from_config(config)
    return config


def _joint_names(r: _Reader, raw: Any, dof: int) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) != dof:
        raise r.error("joints", f"must be a list of {dof} joint names (arm joints then gripper), got {show(raw)}")
    names = tuple(r.string(v, f"joints[{i}]") for i, v in enumerate(raw))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise r.error(f"joints[{i}]", f"duplicate joint name {name!r}")
    return names


def _hardware_ranges(robot: str, connection: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    ranges = HARDWARE_RANGES[robot]
    if robot == "so100" and connection.get("use_degrees") is True:
        ranges = (SO100_DEGREE_RANGE,) * 5 + ranges[5:]
    return ranges


def _cameras(r: _Reader, raw: Any) -> tuple[CameraConfig, ...]:
    raw = r.mapping(raw, "cameras")
    cameras = []
    for name, settings in raw.items():
        key = f"cameras.{name}"
        if settings is None:  # `--set cameras.wrist=null` drops a camera
            continue
        if not name.isidentifier():
            raise r.error(key, "camera names must be identifiers (letters, digits, _): they name dataset keys")
        settings = r.mapping(settings, key)
        r.only(settings, key, CAMERA_KEYS)
        if "device" not in settings:
            raise r.error(f"{key}.device", "missing (an index such as 0, a device path or a video file)")
        device = settings["device"]
        if isinstance(device, bool) or not isinstance(device, (int, str)) or device == "":
            raise r.error(f"{key}.device", f"must be an index, a device path or a video file, got {show(device)}")
        cameras.append(
            CameraConfig(
                name=name,
                device=device,
                width=r.integer(settings.get("width", 640), f"{key}.width", minimum=1),
                height=r.integer(settings.get("height", 480), f"{key}.height", minimum=1),
                fps=r.integer(settings.get("fps", 30), f"{key}.fps", minimum=1),
                max_age_s=r.positive(settings.get("max_age_s", 0.2), f"{key}.max_age_s"),
            )
        )
    return tuple(cameras)


class _Reader(YamlReader):
    """`YamlReader` plus the value kinds a robot configuration has."""

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(field, f"must be a non-empty string, got {show(value)}")
        return value

    def positive(self, value: Any, field: str) -> float:
        number = self.number(value, field)
        if not number > 0:
            raise self.error(field, f"must be > 0, got {number:g}")
        return number

    def integer(self, value: Any, field: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"must be an integer, got {show(value)}")
        if value < minimum:
            raise self.error(field, f"must be >= {minimum}, got {value}")
        return value

    def vector(self, value: Any, field: str, length: int, what: str = "one per joint") -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != length:
            got = f"{len(value)} values" if isinstance(value, list) else show(value)
            raise self.error(field, f"must be a list of {length} numbers ({what}), got {got}")
        return tuple(self.number(v, f"{field}[{i}]") for i, v in enumerate(value))
