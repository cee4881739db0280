"""The dataset every recording writes, one episode of it, and what a recording run reports.

    frames = FrameSpec(fps, state_names, action_names, cameras, robot_type)   what each frame holds
    writer = open_dataset(out, frames)          created, or opened to append with the same features
    with Recorder(writer, task) as episode:      state, action and a picture per camera, per frame
        episode.add(state, action, {"front": rgb})
        episode.commit(seed=3)                   atomic; leaving the block without it discards the frames

`open_dataset` is the one place a recording opens its dataset: the Meta-World experts, teleoperation and
`evo1 deploy --record` all go through it, so a storage format choice goes here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.data.types import vector_feature
from evo1cli.data.writer import Camera, DatasetWriter, EpisodeRecorder
from evo1cli.features import ACTION, STATE, image_key
from evo1cli.robots.base import RobotConfig


@dataclass(frozen=True)
class FrameSpec:
    """What each frame of a recording holds."""

    fps: int
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    cameras: tuple[tuple[str, int, int], ...]  # (name, height, width) per camera
    robot_type: str

    @classmethod
    def of_robot(cls, config: RobotConfig) -> FrameSpec:
        """A real arm's: state and action both the joint vector, at the control rate, every configured camera."""
        joints = tuple(config.joints)
        cameras = tuple((c.name, c.height, c.width) for c in config.cameras)
        return cls(round(config.control_hz), joints, joints, cameras, config.robot)


def open_dataset(out: str | Path, frames: FrameSpec, version: str | None = None) -> DatasetWriter:
    """A dataset for these frames: created in LeRobot layout `version` (v2.1 unless given), or opened to
    append in the layout it already has (an error if its features differ)."""
    vectors = {
        STATE: vector_feature(len(frames.state_names), list(frames.state_names)),
        ACTION: vector_feature(len(frames.action_names), list(frames.action_names)),
    }
    cameras = [Camera(image_key(name), height, width) for name, height, width in frames.cameras]
    return DatasetWriter(out, frames.fps, vectors, cameras, robot_type=frames.robot_type, version=version)


class Recorder:
    """One episode's frames (state, action, an RGB image per camera name), staged until `commit`."""

    def __init__(self, writer: DatasetWriter, task: str):
        self.task = task
        self.episode: EpisodeRecorder = writer.episode()
        self.frames = 0

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.episode.__exit__(*exc)  # discards whatever was not committed

    def add(self, state: np.ndarray, action: np.ndarray, images: dict[str, np.ndarray]) -> None:
        values = {STATE: np.asarray(state, np.float32), ACTION: np.asarray(action, np.float32)}
        self.episode.add_frame(values, {image_key(k): v for k, v in images.items()}, self.task)
        self.frames += 1

    def commit(self, **extra: Any) -> None:
        """Write the episode; `extra` (JSON values) goes into its episodes.jsonl line."""
        self.episode.commit(**extra)

    def discard(self) -> None:
        self.episode.discard()


@dataclass
class RecordingSummary:
    """What a recording run did (each loop counts what applies to it)."""

    kept: int = 0  # episodes committed
    frames: int = 0  # frames in the kept episodes
    failed: int = 0  # scripted expert: unsolved episodes, dropped unless kept on purpose
    discarded: int = 0  # teleoperation: episodes the person discarded (or that Ctrl-C cut short)
    interrupted: bool = False  # stopped by Ctrl-C or by the safety layer
    stopped: str | None = None  # the safety layer's reason, when it stopped the arm (watchdog, ...)
    over_budget: int = 0  # teleoperation: control ticks that ended after their slot
