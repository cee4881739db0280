"""The digital twin under a simulated robot (`--sim`): one running world per scene, shared by the session's
driver, cameras, the leader arm and the scripted person.

    config = load_robot("so100", sim="so100-cube-container")    # connection.fake and connection.sim set
    twin = open_twin(config)          # the world (started on first use) and its hardware, counted
    twin.hardware.follower            # what the driver talks through (SO-100: port handlers; xArm6: the SDK)
    twin.capture("twin://front")      # a camera of the twin, as cv2.VideoCapture delivers it (BGR)
    close_twin(config)                # the last user closes the world

A camera's `device` names the twin camera it shows, `twin://<camera>`; `?channels=rgb` delivers the frames in
the wrong channel order, as a misconfigured capture would (what `evo1 deploy` must notice).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.robots.base import RobotConfig
from evo1cli.robots.fakes.twin import TwinHardware
from evo1cli.sim.twin import open_scene
from evo1cli.sim.twin.world import TwinWorld

SCHEME = "twin://"


def twin_camera(device: object) -> tuple[str, str]:
    """(twin camera, channel order) of a `twin://<camera>[?channels=rgb|bgr]` device."""
    url = urlparse(str(device))
    channels = parse_qs(url.query).get("channels", ["bgr"])[0]
    if url.scheme != "twin" or not url.netloc or channels not in ("bgr", "rgb"):
        raise Evo1Error(f"expected twin://<camera>[?channels=rgb], got {device!r}", field="cameras.device")
    return url.netloc, channels


class TwinCapture:
    """The part of `cv2.VideoCapture` that `robots.cameras.Camera` uses, reading a twin camera: each `read()`
    waits for the next rendered frame (a live camera's pace) and returns it in BGR, as OpenCV does."""

    def __init__(self, world: TwinWorld, device: object):
        self.world = world
        self.name, self.channels = twin_camera(device)
        self._last = -1
        self._open = True

    def isOpened(self) -> bool:
        return self._open

    def set(self, prop: int, value: float) -> bool:
        return False  # the size and rate are the twin's (the world renders at the configured ones)

    def read(self) -> tuple[bool, np.ndarray | None]:
        got = self.world.frame(self.name, after=self._last) if self._open else None
        if got is None:
            return False, None
        rgb, self._last = got
        return True, (rgb.copy() if self.channels == "rgb" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def release(self) -> None:
        self._open = False


@dataclass
class Twin:
    world: TwinWorld
    hardware: TwinHardware
    users: int = 0

    def capture(self, device: object) -> TwinCapture:
        return TwinCapture(self.world, device)


_LIVE: dict[str, Twin] = {}
_LOCK = threading.Lock()


def camera_sizes(config: RobotConfig) -> dict[str, tuple[int, int]]:
    """The twin cameras the configuration shows, with the (width, height) each is rendered at."""
    sizes: dict[str, tuple[int, int]] = {}
    for camera in config.cameras:
        name, _ = twin_camera(camera.device)
        size = (camera.width, camera.height)
        if sizes.setdefault(name, size) != size:
            raise Evo1Error(f"twin camera {name!r} is shown at two sizes", field=f"cameras.{camera.name}")
    return sizes


def open_twin(config: RobotConfig) -> Twin:
    """The running twin of `config`'s scene (created on first use); counted: pair with `close_twin`."""
    scene_name = config.connection.get("sim")
    with _LOCK:
        twin = _LIVE.get(scene_name)
        if twin is None:
            scene = open_scene(config.robot, scene_name)
            world = TwinWorld(scene, camera_sizes(config), fps=max(c.fps for c in config.cameras or ()) or 30)
            if config.robot == "so100":
                from evo1cli.robots.fakes.twin_so100 import attach
            else:
                from evo1cli.robots.fakes.twin_xarm6 import attach
            twin = _LIVE[scene_name] = Twin(world, attach(world, config))
        twin.users += 1
        return twin


def close_twin(config: RobotConfig) -> None:
    with _LOCK:
        twin = _LIVE.get(config.connection.get("sim"))
        if twin is None:
            return
        twin.users -= 1
        if twin.users <= 0:
            twin.world.close()
            del _LIVE[config.connection.get("sim")]


def live_twin(config: RobotConfig) -> Twin | None:
    """The twin a session of `config` runs on, if it is simulated by one."""
    return _LIVE.get(config.connection.get("sim")) if config.connection.get("sim") else None


def is_twin(config: RobotConfig) -> bool:
    return bool(config.connection.get("sim"))


def camera_opener(config: RobotConfig) -> Any:
    """What `CameraSet` opens a camera with: a twin's capture, or OpenCV's."""
    twin = live_twin(config)
    return twin.capture if twin is not None else cv2.VideoCapture
