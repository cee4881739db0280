"""`ChunkBroker`: keeps action chunks coming from any `Policy`, one action per control tick.

    broker = ChunkBroker(policy, execute=15)                    # synchronous, queries on this thread
    action = broker.act(observe)       # observe() -> Query, called only when a query goes out this tick
    broker = ChunkBroker(policy, 25, asynchronous=True, blend=3, period_s=1 / 30)
    broker.warm_up(observe)            # async: one unmeasured query, then the first chunk, before the clock
    broker.close()

Every chunk loop runs through it: the bench harness's workers, `evo1 deploy`, the client's `ChunkExecutor`
and the RoboTwin plug-in. The chunk rules (due, ahead, skip, stale, blend) are `chunks.ActionQueue`'s:

    sync    when the chunk is due (`execute` actions used), ask and wait for the answer
    async   ask when at most `lead` actions are left before it is due (`lead`: the measured latency in
            ticks + 1, at least `min_lead`, or `lead` when given) and keep executing meanwhile; if the
            chunk runs out first, wait as sync does

Queries run on the caller's thread, or (always when asynchronous; when `threaded` for a synchronous
loop) on a `BackgroundQuery` thread. A threaded wait runs inside `holding()` (deploy: the safety layer's
idle, so the watchdog stays patient while the arm holds) and looks at `stopped()` every `period_s`, so
a stop ends it within one tick: `act` then returns None. `prepare` turns each answer into the chunk that
is queued (deploy: checked against the robot's joints; RoboTwin: smoothed over time).

Numpy and the standard library only: it ships with the light client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from .background import Answer, BackgroundQuery
from .chunks import ActionQueue, LatencyEstimate, Policy, Query, lead_ticks


class ChunkBroker:
    def __init__(
        self,
        policy: Policy,
        execute: int | None = None,
        *,
        asynchronous: bool = False,
        blend: int = 0,
        period_s: float = 0.0,
        lead: int | None = None,
        min_lead: int = 2,
        threaded: bool = False,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
        stopped: Callable[[], bool] = lambda: False,
        holding: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if (asynchronous or threaded) and period_s <= 0:
            raise ValueError("an asynchronous or threaded broker needs the control period (period_s > 0)")
        self.policy, self.asynchronous = policy, asynchronous
        self.period_s, self.fixed_lead, self.min_lead = period_s, lead, min_lead
        self.prepare, self.stopped, self.holding, self.clock = prepare, stopped, holding, clock
        self.queue = ActionQueue(execute, blend if asynchronous else 0)
        self.latency = LatencyEstimate()
        self.worker = BackgroundQuery(policy, clock) if asynchronous or threaded else None
        self.queries = 0  # queries asked (the warm-up not counted)
        self.waits = 0  # answers the loop waited for with nothing to execute (sync: all of them)
        self.lead = 0  # async: the last lead used (actions ahead of due)
        self.infer_s: list[float] = []  # per answer taken
        self.query_s = 0.0  # seconds of the answers after the first chunk ...
        self.held_s = 0.0  # ... and of those, how long the loop waited for them
        self.switch = False  # the action `act` just returned is the first of a new chunk (not the first one)
        self._switched = False

    def reset(self) -> None:
        """A new episode: the queue empties; an answer still in flight is awaited and dropped."""
        if self.worker is not None and self.worker.busy:
            self.worker.wait(None)
        self.queue.reset()

    def close(self, wait_s: float = 0.0) -> None:
        """End the query thread, if any, once its query in flight is done (waiting up to `wait_s` for it)."""
        if self.worker is not None:
            self.worker.close(wait_s)

    # ------------------------------------------------------------------ the loop's calls
    def warm_up(self, observe: Callable[[], Query]) -> bool:
        """Async, before the clock starts: a warm-up query (it pays for allocations, kernels, a
        connection; its latency is left out of the estimate and its chunk unused), then the first chunk.
        False if a stop came meanwhile."""
        assert self.worker is not None
        self.worker.submit(observe(), 0)
        answer = self._wait()
        if answer is None:
            return False
        self.latency.add(answer.seconds)
        self._submit(observe())
        answer = self._wait()
        if answer is None:
            return False
        self._take(answer)
        return True

    def act(self, observe: Callable[[], Query]) -> np.ndarray | None:
        """This tick's action, asking the policy when it is time; None if a stop came while waiting."""
        query: Query | None = None

        def current() -> Query:  # observed at most once a tick, and only when a query goes out
            nonlocal query
            if query is None:
                query = observe()
            return query

        queue = self.queue
        if self.asynchronous:
            assert self.worker is not None
            answer = self.worker.wait(0.0)
            if answer is not None:
                self._take(answer)
            self.lead = lead_ticks(self.latency.seconds, self.period_s, self.min_lead, self.fixed_lead)
        while not (queue.available if self.asynchronous else not queue.due):
            answer = self._ask(current())
            if answer is None:
                return None
            self.waits += 1
            self._take(answer)
        if self.asynchronous and not self.worker.busy and queue.remaining <= self.lead:  # type: ignore[union-attr]
            self._submit(current())
        self.switch, self._switched = self._switched, False
        return queue.pop()

    # ------------------------------------------------------------------ queries and answers
    def _ask(self, query: Query) -> Answer | None:
        if self.worker is not None:
            if not self.worker.busy:
                self._submit(query)
            return self._wait()
        self.queries += 1
        start = self.clock()
        chunk = self.policy.infer([query])[0]
        seconds = self.clock() - start
        if self.queue.chunks:
            self.held_s += seconds
        return Answer(chunk, self.queue.tick, seconds)

    def _submit(self, query: Query) -> None:
        assert self.worker is not None
        self.worker.submit(query, self.queue.tick)
        self.queries += 1

    def _wait(self) -> Answer | None:
        """The answer in flight, inside `holding()`; None on a stop."""
        assert self.worker is not None
        start = self.clock()
        try:
            with self.holding():
                while not self.stopped():
                    answer = self.worker.wait(self.period_s)  # in slices: a stop ends the wait within one tick
                    if answer is not None:
                        return answer
            return None
        finally:
            if self.queue.chunks:
                self.held_s += self.clock() - start

    def _take(self, answer: Answer) -> None:
        self.latency.add(answer.seconds)
        self.infer_s.append(answer.seconds)
        if self.queue.chunks:  # the first chunk is waited for before anything moves: not counted
            self.query_s += answer.seconds
        chunk = answer.chunk if self.prepare is None else self.prepare(answer.chunk)
        if self.queue.push(chunk, answer.origin) is not None:
            self._switched = self.queue.chunks > 1
