"""What every chunk loop shares: the query, the policy interface and the action queue (numpy only).

    Query            what a policy is asked: views, state, prompt, optional stats keys and noise key
    Policy           `infer(queries) -> chunks`, `metadata`, `close()`: a checkpoint on a device
                     (`evo1cli.runtime.policy.LocalPolicy`), `evo1 serve` (`remote.RemotePolicy`) or a
                     recorded episode (`evo1cli.deploy.replay.ReplayPolicy`)
    ActionQueue      the current chunk, one action per control tick (`broker.ChunkBroker` drives it for
                     the bench harness, `evo1 deploy`, the client's `ChunkExecutor` and the RoboTwin plug-in)
    LatencyEstimate  how long a query takes, as the asynchronous loop plans with it

Time in the queue is counted in ticks: one tick per action handed out. A chunk answers the observation
taken at some tick (its `origin`): its action k belongs to tick origin + k. The rules:

- due: a chunk is due for replacement once `execute` of its actions (counted from its origin) have gone
  by, or it has run out. A synchronous loop asks for the next chunk then and waits for it.
- ahead: an asynchronous loop asks while `remaining` <= its lead (ticks the answer is expected to take,
  `lead_ticks`), and keeps executing meanwhile, past `execute` if need be, up to the chunk's end.
- skip: when a chunk arrives, its actions for ticks that have already gone by are skipped (they were
  planned from an older observation): execution starts at action `tick - origin`.
- stale: a chunk that answers an older observation than the one being executed, or whose actions are
  all in the past, is dropped whole and never executed.
- blend: at a switch the first `blend` actions mix the old chunk's plan for that tick with the new one's,
  weights (k + 1) / (blend + 1) for k = 0 .. blend - 1, so the command does not jump.

Numpy and the standard library only: it ships with the light client (`evo1 bench robotwin --export-plugin`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass
class Query:
    """One observation for a policy. `seed` (with `index`, the queries before this one in the episode)
    fixes the chunk's initial noise, so a rerun repeats the chunk; None draws fresh noise."""

    images: Sequence[np.ndarray | None]  # RGB uint8 (H, W, 3) per view slot, None for an absent view
    state: np.ndarray | Sequence[float]  # the robot's native state
    prompt: str
    embodiment: str | None = None  # stats keys; None: the policy's own default
    dataset: str | None = None
    seed: int | None = None
    index: int = 0


class Policy(Protocol):
    """Action chunks for a batch of queries: one (H, native action dims) array each. `metadata` describes
    the policy (for a checkpoint: what `evo1 serve` sends on connect); `close` frees what it holds (a
    connection, say) and is safe to call twice."""

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ActionQueue:
    """The current action chunk, handed out one action per control tick (see the module docstring).

    execute: actions of a chunk used before the next one is due (None: all of them).
    blend: ticks over which a new chunk takes over from the old one (0: at once).
    """

    def __init__(self, execute: int | None = None, blend: int = 0):
        if (execute is not None and execute < 1) or blend < 0:
            raise ValueError("execute must be >= 1 and blend >= 0")
        self.execute = execute
        self.blend = blend
        self.reset()

    def reset(self) -> None:
        """Empty, at tick 0 (a new episode)."""
        self.tick = 0
        self.chunks = 0  # chunks taken
        self.skipped = 0  # actions skipped because their tick had gone by when the chunk arrived
        self.dropped = 0  # chunks dropped whole (stale)
        self._chunk: np.ndarray | None = None
        self._origin = 0
        self._fade: tuple[np.ndarray, int, int] | None = None  # (old chunk, its origin, the switch tick)

    # ------------------------------------------------------------------ state
    @property
    def index(self) -> int:
        """The position of this tick's action in the current chunk."""
        return self.tick - self._origin

    @property
    def remaining(self) -> int:
        """Actions of the current chunk left before it is due (0 when due or empty)."""
        if self._chunk is None:
            return 0
        limit = len(self._chunk) if self.execute is None else min(self.execute, len(self._chunk))
        return max(0, limit - self.index)

    @property
    def due(self) -> bool:
        return self.remaining == 0

    @property
    def available(self) -> bool:
        """Whether the current chunk has an action for this tick (possibly past `execute`)."""
        return self._chunk is not None and self.index < len(self._chunk)

    # ------------------------------------------------------------------ chunks in, actions out
    def push(self, chunk: Any, origin: int | None = None) -> int | None:
        """Take a chunk that answers the observation of tick `origin` (default: this tick).

        Returns the number of actions skipped, or None if the chunk is stale and was dropped."""
        array = np.asarray(chunk)
        if array.ndim != 2 or len(array) == 0:
            raise ValueError(f"expected a chunk of shape (H, action dims), got {array.shape}")
        origin = self.tick if origin is None else origin
        if origin > self.tick:
            raise ValueError(f"a chunk from tick {origin} cannot arrive at tick {self.tick}")
        skip = self.tick - origin
        if (self._chunk is not None and origin < self._origin) or skip >= len(array):
            self.dropped += 1
            return None
        if self.blend and self.available:
            self._fade = (self._chunk, self._origin, self.tick)  # type: ignore[arg-type]
        else:
            self._fade = None
        self._chunk, self._origin = array, origin
        self.chunks += 1
        self.skipped += skip
        return skip

    def pop(self) -> np.ndarray:
        """This tick's action (blended at a switch); moves on one tick."""
        if self._chunk is None or not self.available:
            raise IndexError(f"no action for tick {self.tick}: push a chunk first")
        action = self._chunk[self.index]
        if self._fade is not None:
            old, old_origin, start = self._fade
            k, j = self.tick - start, self.tick - old_origin
            if k < self.blend and j < len(old):
                w = (k + 1) / (self.blend + 1)
                with np.errstate(invalid="ignore"):  # inf - inf: a non-finite action stays non-finite
                    action = (1 - w) * old[j] + w * action
            else:
                self._fade = None
        self.tick += 1
        return action


class LatencyEstimate:
    """Seconds per query as the asynchronous loop plans with them: the slowest of the last `window`
    measured. The first `ignore_first` measurements are left out: a first query pays for warm-up
    (allocations, kernel selection, a connection), and planning with it would ask far too early."""

    def __init__(self, window: int = 5, ignore_first: int = 1):
        self.ignore_first = ignore_first
        self.measured = 0
        self._recent: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self.measured += 1
        if self.measured > self.ignore_first:
            self._recent.append(seconds)

    @property
    def seconds(self) -> float | None:
        return max(self._recent) if self._recent else None


def lead_ticks(latency_s: float | None, period_s: float, floor: int = 2, override: int | None = None) -> int:
    """How many actions before a chunk is due to ask for the next one: the latency in ticks plus one,
    at least `floor` (also the value before any latency is known); `override` wins."""
    if override is not None:
        return override
    if latency_s is None:
        return floor
    return max(floor, math.ceil(latency_s / period_s - 1e-9) + 1)  # 1e-9: 0.3 s at 30 Hz is 9 ticks, not 10
