"""The closed loop of `evo1 deploy`: observe, keep a chunk of actions coming, execute one per tick.

    tick k (period 1 / control_hz):
      observe   joints = measured (dof,), images = every camera's newest frame (a stale one is an error)
      ask       sync:  when the chunk is due (`action_steps` used), query the policy and wait for it
                       (the safety layer's `idle()` keeps the watchdog patient meanwhile; the arm holds)
                async: when at most `lead` actions are left before it is due, query in the background
                       and keep executing; `lead` = the measured latency in ticks + 1 (at least 2), or
                       `--lead`; a first, warm-up query before the loop is not measured. A chunk that
                       arrives skips the actions whose ticks went by meanwhile and is blended in over
                       `blend` ticks; if the current chunk runs out first, the loop waits as sync does
      act       safety.command(queue.pop())   (clamped, rate-limited, NaN-rejected; dry run: not sent)
      record    optionally (state = joints, action = what was sent, images) into a dataset episode
      sleep     until tick k + 1 (`ticks.TickClock`, whose docstring states the late-tick rule)

The policy is any `chunks.Policy`: a local checkpoint or a remote `evo1 serve` (`runtime.policy.open_policy`),
or a recorded episode (`replay.ReplayPolicy`). The chunks come through a `ChunkBroker`. The loop ends after
`max_seconds` (or `max_ticks`), when `until()` says so (a twin's task done), on Ctrl-C (the safety layer has
already stopped the arm; the loop ends within one tick, also while it waits for a query) or on a safety stop,
and returns its `Cadence`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evo1cli.client.broker import ChunkBroker
from evo1cli.client.chunks import Policy, Query
from evo1cli.robots.base import RobotError
from evo1cli.robots.ticks import TickClock

INFERENCE = ("sync", "async")


@dataclass(frozen=True)
class Execution:
    """How chunks are executed: see the module docstring."""

    action_steps: int
    inference: str = "sync"
    blend: int = 3  # async only: ticks over which a new chunk takes over
    lead: int | None = None  # async only: ask this many actions ahead (None: from the measured latency)
    min_lead: int = 2
    infer_timeout_s: float = 30.0  # a query may keep the arm waiting this long before the watchdog stops it

    @property
    def asynchronous(self) -> bool:
        return self.inference == "async"


@dataclass
class Cadence:
    """How the loop kept time, and what the safety layer did."""

    target_hz: float
    inference: str = "sync"
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
    warmup_s: float = 0.0  # async: the unmeasured first query, before the loop
    waits: int = 0  # queries the loop waited for with the arm holding (sync: all of them)
    query_s: float = 0.0  # seconds of the queries after the first chunk ...
    held_s: float = 0.0  # ... and of those, how long the arm held waiting for them
    skipped: int = 0  # actions skipped because their tick went by while their chunk was computed
    dropped: int = 0  # chunks dropped whole (stale)
    lead: int = 0  # async: the last lead used (actions ahead of due)
    latency_estimate_s: float | None = None
    max_step: dict[str, float] = field(default_factory=lambda: {"switch": 0.0, "within": 0.0})

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
            "inference": self.inference,
            "waits": self.waits,
            "inference_overlap": round(max(0.0, 1 - self.held_s / self.query_s), 3) if self.query_s else 0.0,
            "skipped_actions": self.skipped,
            "dropped_chunks": self.dropped,
            "latency_estimate_ms": None if self.latency_estimate_s is None else round(1e3 * self.latency_estimate_s, 1),
            "lead": self.lead,
            "warmup_s": round(self.warmup_s, 3),
            "max_step_at_switch": round(self.max_step["switch"], 3),
            "max_step_within_chunk": round(self.max_step["within"], 3),
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
    policy: Policy,
    prompt: str,
    execution: Execution,
    *,
    max_seconds: float,
    max_ticks: int | None = None,
    recorder: Any = None,
    until: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Cadence:
    """Run the loop on a `RobotSession`; `recorder.add(joints, sent, images)` records each tick if given;
    `until()`, asked after each tick, ends the loop early when true (ended: "success")."""
    return _Rollout(robot, policy, prompt, execution, recorder, clock, until).run(max_seconds, max_ticks)


class _Rollout:
    def __init__(
        self, robot: Any, policy: Policy, prompt: str, execution: Execution, recorder: Any, clock: Any, until: Any
    ):
        self.robot, self.safety, self.prompt, self.ex = robot, robot.safety, prompt, execution
        self.recorder, self.clock, self.until = recorder, clock, until
        config = robot.config
        self.period = 1.0 / config.control_hz
        self.max_step = np.asarray(config.limits.max_step, dtype=np.float64)
        self.names = [c.name for c in config.cameras]
        dof = len(config.joints)
        self.broker = ChunkBroker(
            policy,
            execution.action_steps,
            asynchronous=execution.asynchronous,
            blend=execution.blend,
            period_s=self.period,
            lead=execution.lead,
            min_lead=execution.min_lead,
            threaded=True,  # a sync wait too ends on Ctrl-C or a safety stop within one tick
            prepare=lambda chunk: check_chunk(chunk, dof),
            stopped=self._stopping,
            holding=lambda: self.safety.idle(execution.infer_timeout_s),  # the arm holds, the watchdog waits
            clock=clock,
        )
        self.cadence = Cadence(config.control_hz, execution.inference)
        self.counts_before = dict(self.safety.counts)  # a session's safety counts run on across rollouts
        self.switched = False  # the next measured step is the first of a new chunk

    def run(self, max_seconds: float, max_ticks: int | None) -> Cadence:
        on_time = False
        try:
            with self.safety.handle_sigint():
                if not self.ex.asynchronous or self._start():
                    on_time = self._loop(max_seconds, max_ticks)
        finally:  # on time: let a query in flight finish, so the policy is free for its next user; else go now
            self.broker.close(self.ex.infer_timeout_s if on_time else 0.0)
        return self._end()

    def _loop(self, max_seconds: float, max_ticks: int | None) -> bool:
        """Tick until the time (or tick) budget is spent: True; or until a stop: False."""
        cadence, safety = self.cadence, self.safety
        ticks = TickClock(self.period, self.clock)
        try:
            while ticks.elapsed() < max_seconds and (max_ticks is None or cadence.ticks < max_ticks):
                t0 = self.clock()
                if self._stopping():
                    return False
                joints, frames, query = self._observe()
                cadence.observe_s.append(self.clock() - t0)
                target = self.broker.act(lambda q=query: q)
                if target is None:  # a stop came while waiting for the policy
                    return False
                t1 = self.clock()
                self._measure_step(target)
                sent = safety.command(target)
                cadence.act_s.append(self.clock() - t1)
                if self.recorder is not None and sent is not None:
                    t2 = self.clock()
                    self.recorder.add(joints, sent, frames)
                    cadence.record_s.append(self.clock() - t2)
                cadence.ticks += 1
                if self.until is not None and self.until():
                    cadence.ended = "success"
                    return True
                ticks.wait()
            return True
        finally:
            cadence.seconds = ticks.elapsed()
            cadence.over_budget = ticks.over_budget

    def _start(self) -> bool:
        """Async, before the clock starts, the arm holding: the broker's warm-up query and first chunk.
        False if a stop came meanwhile."""
        start = self.clock()
        if not self.broker.warm_up(lambda: self._observe()[2]):
            return False
        self.cadence.warmup_s = self.clock() - start
        return True

    def _end(self) -> Cadence:
        cadence, broker = self.cadence, self.broker
        self._stopping()
        counts = {k: v - self.counts_before.get(k, 0) for k, v in self.safety.counts.items()}
        cadence.interventions = {k: v for k, v in counts.items() if v}  # this rollout's own
        cadence.queries, cadence.waits, cadence.lead = broker.queries, broker.waits, broker.lead
        cadence.infer_s, cadence.query_s, cadence.held_s = broker.infer_s, broker.query_s, broker.held_s
        cadence.skipped, cadence.dropped = broker.queue.skipped, broker.queue.dropped
        cadence.latency_estimate_s = broker.latency.seconds
        return cadence

    def _stopping(self) -> bool:
        if self.safety.stop_requested:
            self.cadence.ended = "Ctrl-C"
        elif self.safety.stopped is not None:
            self.cadence.ended = f"safety stop: {self.safety.stopped}"
        else:
            return False
        return True

    def _observe(self) -> tuple[np.ndarray, dict[str, np.ndarray], Query]:
        joints = self.robot.read_joints()
        frames = self.robot.read_images()
        return joints, frames, Query([frames[name] for name in self.names], joints, self.prompt)

    def _measure_step(self, target: np.ndarray) -> None:
        """How far this command asks to move from the last one sent, in units of max_step (1 = the limit)."""
        self.switched = self.switched or self.broker.switch
        last = self.safety.last_command
        if last is None or not np.all(np.isfinite(target)):
            return
        step = float(np.max(np.abs(target - last) / self.max_step))
        which = "switch" if self.switched else "within"
        self.cadence.max_step[which] = max(self.cadence.max_step[which], step)
        self.switched = False
