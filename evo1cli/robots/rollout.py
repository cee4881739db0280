"""The closed loop of `evo1 deploy`: observe, query the policy, execute a chunk at the control rate, re-query.

    tick k (period 1 / control_hz):
      observe   joints = measured (dof,), images = every camera's newest frame (a stale one is an error)
      infer     only when the chunk is used up: chunk = policy(images, joints, prompt)   (H, >= dof)
                (the safety layer's `idle()` keeps the watchdog patient meanwhile; the arm holds)
      act       safety.command(chunk[i])   (clamped, rate-limited, NaN-rejected; dry run: not sent)
      record    optionally (state = joints, action = what was sent, images) into a dataset episode
      sleep     until tick k + 1; a tick that ends late counts as over budget and the schedule restarts

The policy is any `(images, state, prompt) -> chunk` function: a local checkpoint (`local_policy`) or a
remote `evo1 serve` (`remote_policy`). The loop ends after `max_seconds`, on Ctrl-C (the safety layer has
already stopped the arm) or on a safety stop, and returns its `Cadence`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evo1cli.robots.base import RobotError

ChunkFn = Callable[[list[np.ndarray], np.ndarray, str], np.ndarray]
"""(camera images in config order, measured joints, prompt) -> action chunk (H, action dims)."""


def local_policy(checkpoint: str, embodiment: str | None, dataset: str | None, device: str | None = None) -> ChunkFn:
    import torch

    from evo1cli.model.checkpoint import load_policy
    from evo1cli.model.policy import Observation

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy = load_policy(checkpoint, device=device)

    def infer(images: list[np.ndarray], state: np.ndarray, prompt: str) -> np.ndarray:
        return policy.predict([Observation(images, prompt, state, embodiment, dataset)])[0]

    return infer


def remote_policy(url: str, token: str | None, embodiment: str | None, dataset: str | None) -> ChunkFn:
    from evo1cli.serving.client import PolicyClient

    client = PolicyClient(url, token=token, retries=3)

    def infer(images: list[np.ndarray], state: np.ndarray, prompt: str) -> np.ndarray:
        return np.asarray(client.infer(images, state, prompt, embodiment, dataset))

    return infer


@dataclass
class Cadence:
    """How the loop kept time, and what the safety layer did."""

    target_hz: float
    ticks: int = 0
    seconds: float = 0.0
    queries: int = 0
    over_budget: int = 0  # ticks that ended after their slot
    observe_s: list[float] = field(default_factory=list)
    infer_s: list[float] = field(default_factory=list)  # per query
    act_s: list[float] = field(default_factory=list)
    record_s: list[float] = field(default_factory=list)  # per recorded tick (video encoding included)
    interventions: dict[str, int] = field(default_factory=dict)
    ended: str = "done"  # done | Ctrl-C | safety stop: <why>

    def summary(self) -> dict[str, Any]:
        def ms(values: list[float]) -> dict[str, float]:
            if not values:
                return {"mean_ms": 0.0, "p95_ms": 0.0, "total_s": 0.0}
            array = np.asarray(values)
            return {
                "mean_ms": round(1000 * float(array.mean()), 2),
                "p95_ms": round(1000 * float(np.percentile(array, 95)), 2),
                "total_s": round(float(array.sum()), 3),
            }

        return {
            "target_hz": self.target_hz,
            "achieved_hz": round(self.ticks / self.seconds, 2) if self.seconds else 0.0,
            "ticks": self.ticks,
            "seconds": round(self.seconds, 3),
            "queries": self.queries,
            "ticks_over_budget": self.over_budget,
            "observe": ms(self.observe_s),
            "infer": ms(self.infer_s),
            "act": ms(self.act_s),
            "record": ms(self.record_s),
            "safety_interventions": dict(self.interventions),
            "ended": self.ended,
        }


def check_chunk(chunk: Any, dof: int) -> np.ndarray:
    """The chunk as (H, dof) float64: extra action dims (padding) are dropped, too few is an error."""
    array = np.asarray(chunk, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < dof:
        raise RobotError(f"the policy returned actions of shape {array.shape}; this robot needs (H, {dof})")
    return array[:, :dof]


def run_rollout(
    robot: Any,
    policy: ChunkFn,
    prompt: str,
    *,
    action_steps: int,
    max_seconds: float,
    infer_timeout_s: float = 30.0,
    recorder: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Cadence:
    """Run the loop on a `RobotSession`; `recorder.add(joints, sent, images)` records each tick if given."""
    config, safety = robot.config, robot.safety
    period = 1.0 / config.control_hz
    cadence = Cadence(config.control_hz)
    names = [c.name for c in config.cameras]
    chunk: np.ndarray | None = None
    used = 0
    start = next_tick = clock()
    with safety.handle_sigint():
        while clock() - start < max_seconds:
            if safety.stop_requested:
                cadence.ended = "Ctrl-C"
                break
            if safety.stopped is not None:
                cadence.ended = f"safety stop: {safety.stopped}"
                break
            t0 = clock()
            joints = robot.read_joints()
            frames = robot.read_images()
            images = [frames[name] for name in names]
            t1 = clock()
            cadence.observe_s.append(t1 - t0)
            if chunk is None or used >= min(action_steps, len(chunk)):
                with safety.idle(infer_timeout_s):
                    chunk = check_chunk(policy(images, joints, prompt), len(joints))
                used = 0
                cadence.queries += 1
                cadence.infer_s.append(clock() - t1)
            t2 = clock()
            sent = safety.command(chunk[used])
            used += 1
            cadence.act_s.append(clock() - t2)
            if recorder is not None and sent is not None:
                t3 = clock()
                recorder.add(joints, sent, frames)
                cadence.record_s.append(clock() - t3)
            cadence.ticks += 1
            next_tick += period
            now = clock()
            if now > next_tick:
                cadence.over_budget += 1
                next_tick = now
            else:
                time.sleep(next_tick - now)
    cadence.seconds = clock() - start
    cadence.interventions = {k: v for k, v in safety.counts.items() if v}
    return cadence
