"""A robot session: the arm, its safety layer and its cameras, opened together and closed in the right order.

    with RobotSession(config) as robot:          # connect, start the safety layer, open the cameras
        joints = robot.read_joints()              # measured (dof,)
        images = robot.read_images()              # {name: RGB uint8}, each fresh or a RobotError
        robot.safety.command(target)              # the only way a command reaches the arm

Closing stops the watchdog, leaves the arm holding (the driver's `disconnect`) and releases the cameras.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from evo1cli.robots.base import Arm, RobotConfig, RobotError
from evo1cli.robots.cameras import CameraSet
from evo1cli.robots.safety import SafetyLayer


def make_arm(config: RobotConfig) -> Arm:
    """The driver for `config.robot` (its fake with `connection.fake: true`)."""
    if config.robot == "xarm6":
        from evo1cli.robots.xarm6 import XArm6

        return XArm6(config)
    if config.robot == "so100":
        from evo1cli.robots.so100 import SO100

        return SO100(config)
    raise RobotError(f"no driver for robot {config.robot!r} (xarm6, so100)")


def make_leader(config: RobotConfig) -> Any:
    """The SO-100 leader arm for teleoperation (None for robots without one)."""
    if config.robot != "so100":
        return None
    from evo1cli.robots.so100 import SO100Leader

    return SO100Leader(config)


class RobotSession:
    def __init__(self, config: RobotConfig, dry_run: bool = False, cameras: bool = True):
        self.config = config
        self.arm = make_arm(config)
        self.safety = SafetyLayer(self.arm, config, dry_run=dry_run)
        self._want_cameras = cameras
        self.cameras: CameraSet | None = None

    def __enter__(self) -> RobotSession:
        self.arm.connect()
        try:
            self.safety.start()
            if self._want_cameras and self.config.cameras:
                self.cameras = CameraSet(self.config.cameras)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.safety.close()
            self.arm.disconnect()
        finally:
            if self.cameras is not None:
                self.cameras.close()
                self.cameras = None

    def read_joints(self) -> np.ndarray:
        return self.safety.read_joints()

    def read_images(self) -> dict[str, np.ndarray]:
        return {} if self.cameras is None else self.cameras.read()


def load_robot(
    robot: str, path: str | None = None, overrides: list[str] | None = None, fake: bool = False
) -> RobotConfig:
    """The robot's configuration: `path` or the packaged default, with `key=value` overrides; `fake` adds
    `connection.fake=true` (simulated hardware)."""
    from evo1cli.robots.config import default_config_path, load_robot_config

    extra = ["connection.fake=true"] if fake else []
    config = load_robot_config(path or default_config_path(robot), [*(overrides or []), *extra], robot=robot)
    if fake:  # cameras given by index do not exist either: a rehearsal video plays instead
        from evo1cli.robots.fakes.camera import rehearsal_video

        cameras = tuple(
            dataclasses.replace(c, device=str(rehearsal_video(c.width, c.height, c.fps)))
            if isinstance(c.device, int) or (isinstance(c.device, str) and c.device.isdigit())
            else c
            for c in config.cameras
        )
        config = dataclasses.replace(config, cameras=cameras)
    return config
