"""OpenCV cameras that always answer with their newest frame, or an error: never a silently stale one.

`Camera` opens `cv2.VideoCapture(device)`: a camera index, a device path or URL, or a video file (a digital
twin's cameras come through `open_capture`, a stand-in for `cv2.VideoCapture` delivering BGR too). A video file
is played at the configured fps in a loop, so recorded videos stand in for cameras (real decoding). A reader
thread keeps only the latest frame (RGB uint8, height x width x 3) and when it arrived; `read()` returns it with
its age and raises `RobotError` when there is none yet (after `start_timeout_s`), when it is older than
`max_age_s`, or when the source delivers another size than configured. `CameraSet` reads several together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from evo1cli.robots.base import CameraConfig, RobotError

log = logging.getLogger(__name__)


class Camera:
    """One camera (or a video file playing as one); opened on construction, `close()` when done."""

    def __init__(
        self,
        config: CameraConfig,
        start_timeout_s: float = 5.0,
        loop: bool = True,
        clock: Callable[[], float] = time.monotonic,
        open_capture: Callable[[int | str], Any] = cv2.VideoCapture,
    ):
        self.config = config
        self.name = config.name
        self.start_timeout_s = start_timeout_s
        self.clock = clock
        device = int(config.device) if isinstance(config.device, str) and config.device.isdigit() else config.device
        self.is_file = isinstance(device, str) and Path(device).is_file()
        self._loop = loop
        if isinstance(device, str) and not self.is_file and "://" not in device and not Path(device).exists():
            raise RobotError(f"camera {self.name!r}: {device} does not exist")
        self._capture = open_capture(device)
        if not self._capture.isOpened():
            self._capture.release()
            raise RobotError(f"camera {self.name!r}: cannot open {device!r} (is it connected, and not in use?)")
        if not self.is_file:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
            self._capture.set(cv2.CAP_PROP_FPS, config.fps)
        self._device = device
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._error: RobotError | None = None
        self._closed = threading.Event()
        self._opened_at = clock()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def read(self) -> tuple[np.ndarray, float]:
        """The newest frame (RGB uint8, do not modify it in place) and its age in seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._frame is not None or self._error is not None or self._closed.is_set(),
                timeout=max(0.0, self._opened_at + self.start_timeout_s - self.clock()),
            )
            if self._error is not None:
                raise self._error
            if self._closed.is_set():
                raise RobotError(f"camera {self.name!r} is closed")
            if self._frame is None:
                raise RobotError(f"camera {self.name!r}: no frame within {self.start_timeout_s:g} s of opening")
            frame, age = self._frame, self.clock() - self._stamp
        if age > self.config.max_age_s:
            raise RobotError(
                f"camera {self.name!r}: the newest frame is {age:.3f} s old (max_age_s {self.config.max_age_s:g}): "
                "the camera stopped delivering"
            )
        return frame, age

    def close(self) -> None:
        """Stop the reader and release the device. Idempotent."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self._capture.release()

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        period = 1.0 / self.config.fps
        due = time.monotonic()
        rewound = False
        while not self._closed.is_set():
            ok, bgr = self._capture.read()
            if not ok:
                if not self.is_file:
                    self._closed.wait(0.005)  # a live camera hiccup: staleness reports it if it lasts
                    continue
                if not self._loop or rewound:  # the end of the video (or one that yields no frames at all)
                    if rewound:
                        self._fail(f"camera {self.name!r}: no frame could be decoded from {self._device}")
                    return
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                rewound = True
                continue
            rewound = False
            if self.is_file:  # pace the video at the camera's fps
                due = max(due + period, time.monotonic() - period)
                self._closed.wait(max(0.0, due - time.monotonic()))
            height, width = bgr.shape[:2]
            if (width, height) != (self.config.width, self.config.height):
                self._fail(
                    f"camera {self.name!r} delivers {width}x{height}, the configuration asks for "
                    f"{self.config.width}x{self.config.height}: set cameras.{self.name}.width/height"
                )
                return
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            with self._cond:
                self._frame, self._stamp = frame, self.clock()
                self._cond.notify_all()

    def _fail(self, message: str) -> None:
        log.error(message)
        with self._cond:
            self._error = RobotError(message)
            self._cond.notify_all()


class CameraSet:
    """Several cameras, opened together (all or none) and read together."""

    def __init__(
        self,
        configs: Iterable[CameraConfig],
        start_timeout_s: float = 5.0,
        loop: bool = True,
        open_capture: Callable[[int | str], Any] = cv2.VideoCapture,
    ):
        self.cameras: dict[str, Camera] = {}
        try:
            for config in configs:
                self.cameras[config.name] = Camera(config, start_timeout_s, loop, open_capture=open_capture)
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        return list(self.cameras)

    def __getitem__(self, name: str) -> Camera:
        return self.cameras[name]

    def read(self) -> dict[str, np.ndarray]:
        """The newest frame of every camera, by name; any missing or stale one raises RobotError."""
        return {name: camera.read()[0] for name, camera in self.cameras.items()}

    def close(self) -> None:
        for camera in self.cameras.values():
            camera.close()

    def __enter__(self) -> CameraSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
