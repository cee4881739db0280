"""Scripted policies for rehearsing the deploy loop and measuring it: no model, known motion (the tests
and benchmarks/deploy_async.py use them).

    Circle(center, radius)   a closed-loop plan: from the measured joints, continue around a circle in two
                             joints (the base and the flange roll: the flange stays where it is)
    Delayed(policy, 0.3)     any policy, answering `delay_s` later (a full-size model on a GPU, say)

With `Circle` every action of a chunk is a small, even step along the circle, so a chunk executed at
the wrong tick (or a switch to the wrong action of a new chunk) shows as a step larger than the rest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from evo1cli.client.chunks import Policy, Query


class Circle:
    def __init__(
        self,
        center: Sequence[float],
        radius: float = 15.0,
        joints: tuple[int, int] = (0, 5),
        step: float = 2.0,  # along the circle per action, in joint units
        horizon: int = 50,
    ):
        self.center = np.asarray(center, dtype=np.float64)
        self.radius, self.joints, self.horizon = radius, joints, horizon
        self.turn = step / radius  # radians per action

    def start(self) -> np.ndarray:
        """A pose on the circle, to move to before the loop starts."""
        pose = self.center.copy()
        pose[self.joints[0]] += self.radius
        return pose

    @property
    def metadata(self) -> dict[str, Any]:
        return {"policy": "circle", "horizon": self.horizon}

    def close(self) -> None:
        pass

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]:
        a, b = self.joints
        out = []
        for q in queries:
            state = np.asarray(q.state, dtype=np.float64)
            angle = np.arctan2(state[b] - self.center[b], state[a] - self.center[a])
            angles = angle + self.turn * np.arange(1, self.horizon + 1)
            chunk = np.tile(state, (self.horizon, 1))
            chunk[:, a] = self.center[a] + self.radius * np.cos(angles)
            chunk[:, b] = self.center[b] + self.radius * np.sin(angles)
            out.append(chunk)
        return out


class Delayed:
    """`policy`, answering `delay_s` after it is asked (its own time included, if it is faster)."""

    def __init__(self, policy: Policy, delay_s: float):
        self.policy, self.delay_s = policy, delay_s
        self.model: Any = getattr(policy, "model", None)  # what `evo1 serve` describes in its metadata

    @property
    def metadata(self) -> dict[str, Any]:
        return self.policy.metadata

    def close(self) -> None:
        self.policy.close()

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]:
        start = time.perf_counter()
        chunks = self.policy.infer(queries)
        time.sleep(max(0.0, self.delay_s - (time.perf_counter() - start)))
        return chunks
