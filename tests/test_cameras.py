"""OpenCV cameras, with H.264 videos (written by PyAV, decoded by OpenCV) standing in for devices."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from evo1cli.robots.base import CameraConfig, RobotError
from evo1cli.robots.cameras import Camera, CameraSet

WIDTH, HEIGHT, FPS = 64, 48, 30


def scene(i: int) -> np.ndarray:
    """A tabletop-like RGB frame: grey gradient, a red block sliding right, frame index in the top strip."""
    image = np.tile(np.linspace(60, 180, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
    image[:8] = 10 + 8 * i
    x = 4 + 2 * i
    image[24:40, x : x + 12] = (220, 20, 20)
    return image


def frame_index(frame: np.ndarray) -> int:
    return round((float(frame[2:6, 8:56].mean()) - 10) / 8)


def write_video(path, frames: int) -> str:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(scene(i), format="rgb24")))
        container.mux(stream.encode())
    return str(path)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    return write_video(tmp_path_factory.mktemp("cameras") / "front.mp4", frames=12)


def config(device, **kwargs) -> CameraConfig:
    return CameraConfig(**{"name": "front", "device": device, "width": WIDTH, "height": HEIGHT, "fps": FPS, **kwargs})


def test_a_video_file_plays_as_a_camera_in_a_loop(video):
    with Camera(config(video)) as camera:
        frame, age = camera.read()
        assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8 and 0 <= age <= 0.2
        red, green, blue = frame[32, 10 + 2 * frame_index(frame)].astype(int)
        assert red > 150 and green < 80 and blue < 80  # RGB order, not OpenCV's BGR
        seen = []
        started = time.monotonic()
        # 18 frames' time (0.6 s) wraps the 12-frame video around; a loaded machine gets up to 5 s
        while time.monotonic() - started < 0.6 or (
            time.monotonic() - started < 5 and not (set(seen) >= set(range(12)) and np.any(np.diff(seen) < 0))
        ):
            seen.append(frame_index(camera.read()[0]))
            time.sleep(0.01)
    steps = np.diff(seen)
    assert set(seen) >= set(range(12)) and np.any(steps < 0)  # every frame shown, then the start again
    assert np.all((steps >= 0) | (steps < -8))  # played in order (0 or 1 step per read, or a wrap)


def test_a_stopped_source_makes_read_fail_instead_of_reusing_frames(video):
    with Camera(config(video, max_age_s=0.1), loop=False) as camera:
        camera.read()
        time.sleep(12 / FPS + 0.2)  # the video has ended: the newest frame is getting old
        with pytest.raises(RobotError, match=r"camera 'front': the newest frame is 0\.\d+ s old .*stopped delivering"):
            camera.read()


def test_wrong_size_is_reported(video):
    with Camera(config(video, width=640, height=480)) as camera:  # noqa: SIM117
        with pytest.raises(RobotError, match="delivers 64x48, the configuration asks for 640x480"):
            camera.read()


def test_missing_or_unreadable_devices(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for device, words in [
        ("/dev/video99", "/dev/video99 does not exist"),
        (57, "cannot open 57"),
        (str(text), "cannot open"),
    ]:
        with pytest.raises(RobotError, match=f"camera 'front': {words}"):
            Camera(config(device))


def test_camera_set_reads_all_at_once_and_opens_all_or_none(video, monkeypatch):
    configs = [config(video), config(video, name="wrist")]
    with CameraSet(configs) as cameras:
        frames = cameras.read()
        assert list(frames) == ["front", "wrist"] == cameras.names
        assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames.values())

    closed = []
    close = Camera.close
    monkeypatch.setattr(Camera, "close", lambda self: (closed.append(self.name), close(self)))
    with pytest.raises(RobotError, match="wrist"):
        CameraSet([config(video), config("/dev/video99", name="wrist")])
    assert closed == ["front"]
