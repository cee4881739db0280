"""The interface every robot driver implements, and the robot configuration it is built from.

A driver talks to one arm through its vendor SDK (xArm: `XArmAPI`; SO-100: the Feetech bus) and knows
nothing about policies. Commands reach it only through `evo1cli.robots.safety.SafetyLayer`.

Units are the robot's own, as its datasets record them: xArm6 joint angles in degrees and the gripper
position in its native 0..850 range; SO-100 as LeRobot records it. State and action are both the
absolute joint vector `joints` (arm joints then gripper).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


class RobotError(Exception):
    """The robot (or its controller) refused or failed: a one-line, human-readable reason.

    `code` is the controller's error/warning code when there is one (xArm error codes, Feetech status bits).
    """

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CameraConfig:
    name: str  # dataset key suffix: observation.images.<name>
    device: int | str  # cv2.VideoCapture index or path/URL
    width: int = 640
    height: int = 480
    fps: int = 30
    max_age_s: float = 0.2  # an older frame is stale: an error, not a silent reuse


@dataclass(frozen=True)
class Limits:
    lower: tuple[float, ...]  # per joint (arm joints then gripper), robot units
    upper: tuple[float, ...]
    max_step: tuple[float, ...]  # largest change per control tick, per joint
    workspace_lower: tuple[float, float, float] | None = None  # end-effector box (mm), needs forward kinematics
    workspace_upper: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class RobotConfig:
    robot: str  # "xarm6" | "so100"
    joints: tuple[str, ...]  # names, arm joints then gripper
    limits: Limits
    home: tuple[float, ...]
    control_hz: float = 30.0
    action_steps: int = 25  # actions executed per policy chunk
    watchdog_s: float = 0.5  # stop the arm if no new command arrives for this long
    cameras: tuple[CameraConfig, ...] = ()
    connection: dict[str, object] = field(default_factory=dict)  # driver-specific: ip, port, ids, "fake": true
    source: str | None = None  # the YAML file it came from, for error messages


class Arm(ABC):
    """One arm. All vectors are `len(config.joints)` long, in robot units."""

    def __init__(self, config: RobotConfig):
        self.config = config

    @property
    def dof(self) -> int:
        return len(self.config.joints)

    @abstractmethod
    def connect(self) -> None:
        """Open the connection, clear recoverable errors, enable the motors, ready for position commands."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop, leave the arm holding (or safely disabled), close the connection. Idempotent."""

    @abstractmethod
    def read_joints(self) -> np.ndarray:
        """Measured joint positions (dof,) float64. Raises RobotError on a controller error."""

    @abstractmethod
    def send_joints(self, target: np.ndarray) -> None:
        """Command absolute joint positions (dof,). Only `SafetyLayer` calls this."""

    @abstractmethod
    def stop(self) -> None:
        """Halt motion now (hold position). Must be safe to call from any state, repeatedly."""

    def resume(self) -> None:  # noqa: B027 - optional hook, a no-op for arms that need nothing after stop()
        """Ready for position commands again after `stop()` (xArm: back to servo mode). `SafetyLayer.resume`
        calls it, then reads the measured joints as its last command."""

    def forward_kinematics(self, joints: np.ndarray) -> np.ndarray | None:
        """End-effector position (x, y, z) in mm for `joints`, or None if the driver cannot compute it."""
        return None

    def teach_mode(self, enabled: bool) -> None:
        """Hand-guiding (gravity compensation) for demonstrations; drivers without it raise RobotError."""
        raise RobotError(f"{self.config.robot} has no hand-guiding mode")
