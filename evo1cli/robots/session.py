"""Robots as the commands open them: configuration, drivers, sessions and calibration.

    config = load_robot("so100", path, ["connection.port=/dev/ttyACM0"], fake=False)
    with RobotSession(config) as robot:          # connect, start the safety layer, open the cameras
        joints = robot.read_joints()              # measured (dof,)
        images = robot.read_images()              # {name: RGB uint8}, each fresh or a RobotError
        robot.safety.command(target)              # the only way a command reaches the arm

Closing stops the watchdog, leaves the arm holding (the driver's `disconnect`) and releases the cameras.

Real or simulated is decided here and only here: `hardware_factory` returns what a driver talks through
(None: the vendor SDK; with `connection.fake: true`, the simulated hardware of `evo1cli.robots.fakes`; with
`connection.sim: <scene>` too, that hardware sits on a digital twin, `robots.fakes.twins`), and `make_arm`,
`make_leader` and `calibrate` pass it in. The drivers never import the fakes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import Arm, RobotConfig, RobotError
from evo1cli.robots.cameras import CameraSet
from evo1cli.robots.fakes.twins import Twin, camera_opener, close_twin, is_twin, live_twin, open_twin
from evo1cli.robots.safety import SafetyLayer

TWIN_MAX_AGE_S = 1.0  # the oldest frame a twin camera may deliver (a real camera's limit is max_age_s)
TWIN_WATCHDOG_S = 2.0  # the watchdog's patience on a twin (a real arm's is watchdog_s)
FAKE_SWEEP_S = 3.0  # a simulated arm's hand sweeps every joint through its range within this long


def hardware_factory(config: RobotConfig, leader: bool = False) -> Callable[..., Any] | None:
    """What the driver of `config` (or of its leader arm) talks through: None for the vendor SDK, or, with
    `connection.fake: true`, the simulated hardware's factory (xArm6: an `XArmAPI` stand-in whose hand
    guides it in teach mode; SO-100: port handlers on simulated servos that a hand sweeps)."""
    if config.connection.get("fake") is not True:
        return None
    twin = live_twin(config)
    if twin is not None:
        return twin.hardware.leader if leader else twin.hardware.follower
    if config.robot == "xarm6":
        from evo1cli.robots.fakes.xarm import rehearsal_api

        return rehearsal_api
    from evo1cli.robots.fakes.feetech import so100_fake_bus

    port = config.connection.get("leader_port" if leader else "port")
    return so100_fake_bus(str(port)).port_handler


def make_arm(config: RobotConfig) -> Arm:
    """The driver for `config.robot`, on the hardware `hardware_factory` chooses."""
    if config.robot == "xarm6":
        from evo1cli.robots.xarm6 import XArm6

        return XArm6(config, api_factory=hardware_factory(config))
    if config.robot == "so100":
        from evo1cli.robots.so100 import SO100

        return SO100(config, port_handler_factory=hardware_factory(config))
    raise RobotError(f"no driver for robot {config.robot!r} (xarm6, so100)")


def make_leader(config: RobotConfig) -> Any:
    """The SO-100 leader arm for teleoperation (None for robots without one)."""
    if config.robot != "so100":
        return None
    from evo1cli.robots.so100 import SO100Leader

    return SO100Leader(config, port_handler_factory=hardware_factory(config, leader=True))


def calibrate(
    config: RobotConfig, leader: bool, say: Callable[[str], None], ask: Callable[[str], object] = input
) -> Path:
    """LeRobot's calibration of an SO-100 follower (or leader), prompting a person through its two steps: the
    middle of the range, then every joint through its whole range. A simulated arm's hand sweeps by itself."""
    twin = open_twin(config) if is_twin(config) else None
    try:
        return _calibrate(config, leader, say, ask, twin)
    finally:
        if twin is not None:
            close_twin(config)


def _calibrate(
    config: RobotConfig, leader: bool, say: Callable[[str], None], ask: Callable[[str], object], twin: Twin | None
) -> Path:
    from evo1cli.robots.so100 import calibrate_so100

    factory = hardware_factory(config, leader)
    if twin is not None:
        twin.hardware.sweep(leader)  # the twin's hand moves every joint through its whole range
    which = "leader" if leader else "follower"
    prompted, pressed = threading.Event(), threading.Event()
    start = time.monotonic()

    def wait_for_middle() -> None:
        if factory is None:
            ask(f"Move the {which} arm to the middle of its range, then press Enter ")

    def finished(progress: object) -> bool:
        if factory is not None:
            return time.monotonic() - start > FAKE_SWEEP_S
        if not prompted.is_set():
            prompted.set()
            say("Move every joint through its whole range, then press Enter")
            threading.Thread(target=lambda: (ask(""), pressed.set()), daemon=True).start()
        return pressed.is_set()

    return calibrate_so100(
        config, leader=leader, wait_for_middle=wait_for_middle, finished=finished, port_handler_factory=factory
    )


class RobotSession:
    def __init__(self, config: RobotConfig, dry_run: bool = False, cameras: bool = True):
        self.config = config
        self.twin = open_twin(config) if is_twin(config) else None  # the world under simulated hardware
        try:
            self.arm = make_arm(config)
            self.safety = SafetyLayer(self.arm, config, dry_run=dry_run)
        except BaseException:
            if self.twin is not None:
                close_twin(config)
            raise
        self._want_cameras = cameras
        self.cameras: CameraSet | None = None

    def __enter__(self) -> RobotSession:
        try:
            if self.twin is not None:
                self.twin.world.start()
            self.arm.connect()
        except BaseException:
            self._release_twin()
            raise
        try:
            self.safety.start()
            if self._want_cameras and self.config.cameras:
                self.cameras = CameraSet(self.config.cameras, open_capture=camera_opener(self.config))
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
            self._release_twin()

    def _release_twin(self) -> None:
        if self.twin is not None:
            self.twin = None
            close_twin(self.config)

    def read_joints(self) -> np.ndarray:
        return self.safety.read_joints()

    def read_images(self) -> dict[str, np.ndarray]:
        return {} if self.cameras is None else self.cameras.read()


def load_robot(
    robot: str,
    path: str | None = None,
    overrides: list[str] | None = None,
    fake: bool = False,
    sim: bool = False,
    scene: str | None = None,
) -> RobotConfig:
    """The robot's configuration: `path` or the packaged default, with `key=value` overrides; `fake` adds
    `connection.fake=true` (simulated hardware); `sim` puts that hardware on the digital twin of `scene` (the
    robot's default scene if None), whose cameras show `cameras.<name>` unless a device already names one."""
    from evo1cli.robots.config import default_config_path, load_robot_config

    if scene is not None and not sim:
        raise Evo1Error("--scene is for the digital twin: add --sim", field="--scene")
    extra = ["connection.fake=true"] if fake or sim else []
    if sim:
        from evo1cli.sim.twin import open_scene
        from evo1cli.sim.twin.scene import mujoco_module

        mujoco_module()  # the one-line error naming the extra, before anything else
        extra.append(f"connection.sim={open_scene(robot, scene).name}")
    config = load_robot_config(path or default_config_path(robot), [*(overrides or []), *extra], robot=robot)
    if sim:
        return _on_twin(config)
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


def _on_twin(config: RobotConfig) -> RobotConfig:
    """`config` with each camera showing the twin camera of its name (unless its device names one already),
    its frames allowed up to TWIN_MAX_AGE_S old, and the watchdog waiting at least TWIN_WATCHDOG_S."""
    from evo1cli.robots.fakes.twins import SCHEME
    from evo1cli.sim.twin import open_scene

    scene = open_scene(config.robot, config.connection["sim"])
    cameras = []
    for camera in config.cameras:
        device = str(camera.device)
        if not device.startswith(SCHEME):
            device = f"{SCHEME}{camera.name}"
        name = device[len(SCHEME) :].split("?")[0]
        if name not in scene.cameras:
            raise Evo1Error(
                f"the scene {scene.name} has no camera {name!r} (its cameras: {', '.join(scene.cameras)})",
                path=config.source,
                field=f"cameras.{camera.name}",
            )
        # A twin frame that is late because the simulator shares the CPU is no camera fault: allow a second.
        cameras.append(dataclasses.replace(camera, device=device, max_age_s=max(camera.max_age_s, TWIN_MAX_AGE_S)))
    # Nor is a loop stalled by the simulator, the renderer and training sharing two cores a lost controller.
    watchdog = max(config.watchdog_s, TWIN_WATCHDOG_S)
    return dataclasses.replace(config, cameras=tuple(cameras), watchdog_s=watchdog)
