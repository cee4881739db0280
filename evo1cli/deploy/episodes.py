"""Episodes of `evo1 deploy --sim`: the closed loop of `rollout.run_rollout` on a digital twin, K placements
never used in collection, a success rate, a video per episode.

    results = run_twin_episodes(session, policy, prompt, execution, seeds=[1_000_000 + k for k in range(20)],
                                episode_s=20, videos=Path("runs/deploy"))

Each episode: the scene is placed by its seed (the arm back at the scene's rest pose, as a person would
reset it), the safety layer adopts the pose, then the loop runs until the cube has rested in the container
for `settle_ticks` ticks or `episode_s` passes. The video shows what the policy saw (every camera side by
side, at the control rate); it is written next to its final name and moved there when the episode ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from evo1cli.client.chunks import Policy
from evo1cli.data.video import VideoWriter
from evo1cli.data.views import FingerprintMean, compare
from evo1cli.deploy.rollout import Cadence, Execution, run_rollout

VIDEO_HEIGHT = 160  # each camera's height in the episode video


@dataclass
class TwinEpisode:
    index: int
    seed: int
    success: bool
    cadence: Cadence
    video: str | None

    def record(self) -> dict[str, Any]:
        summary = self.cadence.summary()
        return {
            "episode": self.index,
            "seed": self.seed,
            "success": self.success,
            "seconds": summary["seconds"],
            "ticks": summary["ticks"],
            "ended": summary["ended"],
            "video": self.video,
            "cadence": summary,
        }


class EpisodeVideo:
    """The frames the policy saw, side by side, streamed into `<path>.partial.mp4` (if `path`), then moved to
    `path`; every frame also goes into its camera's running fingerprint (`prints`)."""

    def __init__(self, path: Path | None, names: Sequence[str], fps: int, prints: dict[str, FingerprintMean]):
        self.path, self.names, self.fps, self.prints = path, list(names), fps, prints
        self.partial = None if path is None else path.with_name(path.stem + ".partial.mp4")
        self.writer: VideoWriter | None = None

    def add(self, joints: np.ndarray, sent: np.ndarray, frames: dict[str, np.ndarray]) -> None:
        for name in self.names:
            self.prints[name].add(frames[name])
        if self.partial is None:
            return
        row = np.hstack([_scaled(frames[name]) for name in self.names])
        if self.writer is None:
            self.writer = VideoWriter(self.partial, self.fps, row.shape[1], row.shape[0])
        self.writer.add(row)

    def close(self, keep: bool) -> str | None:
        if self.writer is None or self.partial is None or self.path is None:
            return None
        self.writer.close()
        if not keep:
            self.partial.unlink(missing_ok=True)
            return None
        os.replace(self.partial, self.path)
        return str(self.path)


def _scaled(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    size = (max(2, round(width * VIDEO_HEIGHT / height) // 2 * 2), VIDEO_HEIGHT)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def run_twin_episodes(
    session: Any,
    policy: Policy,
    prompt: str,
    execution: Execution,
    *,
    seeds: Sequence[int],
    episode_s: float,
    videos: Path | None = None,
    settle_ticks: int = 10,
    max_ticks: int | None = None,
    done: Callable[[TwinEpisode], None] | None = None,
    prints: dict[str, FingerprintMean] | None = None,
) -> list[TwinEpisode]:
    """Run one rollout per seed on `session`'s twin; `done(episode)` after each (progress); `prints` (camera ->
    running fingerprint) collects what every camera showed, for `report`'s view check."""
    world = session.twin.world
    names = [c.name for c in session.config.cameras]
    fps = round(session.config.control_hz)
    prints = prints if prints is not None else {}
    for name in names:
        prints.setdefault(name, FingerprintMean())
    results: list[TwinEpisode] = []
    for index, seed in enumerate(seeds):
        world.reset(seed)
        session.safety.adopt()  # the arm is where the person put it: the command stream starts from there
        streak = [0]

        def resting(streak: list[int] = streak) -> bool:
            streak[0] = streak[0] + 1 if world.success() else 0
            return streak[0] >= settle_ticks

        path = videos / f"episode_{index:03d}_seed{seed}.mp4" if videos else None
        video = EpisodeVideo(path, names, fps, prints)
        kept = False
        try:
            cadence = run_rollout(session, policy, prompt, execution, max_seconds=episode_s, max_ticks=max_ticks,
                                  recorder=video, until=resting)  # fmt: skip
            kept = True
        finally:
            written = video.close(kept)
        episode = TwinEpisode(index, seed, world.success(), cadence, written)
        results.append(episode)
        if done is not None:
            done(episode)
        if cadence.ended not in ("done", "success"):
            break  # Ctrl-C or a safety stop ends the evaluation
    return results


def view_check(trained: Sequence[Any] | None, prints: dict[str, FingerprintMean]) -> list[dict[str, Any]]:
    """Each camera (slot order) against the views the policy was trained on (`data.views.compare`)."""
    names = list(prints)
    if trained is None:
        return [{"camera": n, "match": "unknown", "looks_like": None, "distance": None} for n in names]
    return compare(trained, [prints[n].value() for n in names], names)


def view_warnings(views: Sequence[dict[str, Any]], trained_names: Sequence[str] | None = None) -> list[str]:
    """One line per camera that does not look like what the policy was trained on."""
    lines = []
    for v in views:
        if v["match"] == "swapped":
            other = trained_names[v["looks_like"]] if trained_names else f"view slot {v['looks_like']}"
            lines.append(f"camera {v['camera']!r} looks like the policy's {other} view: cameras swapped?")
        elif v["match"] == "colours reversed":
            lines.append(f"camera {v['camera']!r} looks like its training view with the colour channels reversed "
                         "(RGB/BGR)")  # fmt: skip
    return lines


def report(
    robot: str,
    scene: str,
    episodes: Sequence[TwinEpisode],
    inference: str,
    views: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One object: the success rate, the worst cadence figures over the episodes, the view check, a record per
    episode."""
    summaries = [e.cadence.summary() for e in episodes]
    n = len(episodes)
    names = [v["camera"] for v in views]
    return {
        "robot": robot,
        "scene": scene,
        "inference": inference,
        "episodes_run": n,
        "success_rate": round(sum(e.success for e in episodes) / n, 4) if n else 0.0,
        "achieved_hz": round(min((s["achieved_hz"] for s in summaries), default=0.0), 2),
        "ticks_over_budget": sum(s["ticks_over_budget"] for s in summaries),
        "max_step_at_switch": max((s["max_step_at_switch"] for s in summaries), default=0.0),
        "max_step_within_chunk": max((s["max_step_within_chunk"] for s in summaries), default=0.0),
        "infer_mean_ms": round(float(np.mean([s["infer"]["mean_ms"] for s in summaries])), 2) if n else 0.0,
        "views": list(views),
        "view_warnings": view_warnings(views, names),
        "episodes": [e.record() for e in episodes],
    }
