"""A rehearsal video that stands in for a camera when the robot is simulated (`--fake`).

Real frames through the real path: the clip is H.264 encoded once (PyAV) and then decoded by
`cv2.VideoCapture` like any camera, paced at its fps and looped by `evo1cli.robots.cameras.Camera`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from evo1cli.data.video import VideoWriter

SECONDS = 4


def test_card(width: int, height: int, t: int, fps: int) -> np.ndarray:
    """Frame t: a colour gradient with a square that circles the centre once per clip (RGB uint8)."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([255 * x // max(width - 1, 1), 255 * y // max(height - 1, 1), np.full_like(x, 96)], -1)
    angle = 2 * np.pi * t / (SECONDS * fps)
    side = max(min(width, height) // 6, 2)
    cx = int(width / 2 + width / 4 * np.cos(angle)) - side // 2
    cy = int(height / 2 + height / 4 * np.sin(angle)) - side // 2
    frame[max(cy, 0) : cy + side, max(cx, 0) : cx + side] = (255, 255, 255)
    return frame.astype(np.uint8)


def rehearsal_video(width: int, height: int, fps: int, cache: str | Path | None = None) -> Path:
    """The clip for this size and rate, written once (atomically) under the cache directory."""
    root = Path(cache or os.environ.get("EVO1_CACHE", Path.home() / ".cache" / "evo1cli"))
    path = root / f"rehearsal-{width}x{height}@{fps}.mp4"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".rehearsal-", suffix=".mp4")
    os.close(fd)
    try:
        writer = VideoWriter(tmp, fps, width, height, codec="libx264")
        for t in range(SECONDS * fps):
            writer.add(test_card(width, height, t, fps))
        writer.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
