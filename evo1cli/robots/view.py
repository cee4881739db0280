"""A live view of the cameras during teleoperation (an OpenCV window, about 10 frames per second)."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np

from evo1cli.robots.base import RobotError

HEIGHT = 240  # each camera is shown at this height, side by side


class CameraView:
    def __init__(self, title: str = "evo1 collect", every_s: float = 0.1):
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise RobotError("--view needs a display (DISPLAY is not set); run without --view")
        self.title, self.every_s, self._last = title, every_s, 0.0

    def show(self, images: dict[str, np.ndarray], caption: str) -> None:
        now = time.monotonic()
        if not images or now - self._last < self.every_s:
            return
        self._last = now
        tiles = [cv2.resize(im, (round(im.shape[1] * HEIGHT / im.shape[0]), HEIGHT)) for im in images.values()]
        canvas = cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR)
        cv2.putText(canvas, caption, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
        cv2.imshow(self.title, canvas)
        cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
