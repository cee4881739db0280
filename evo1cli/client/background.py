"""`BackgroundQuery`: one policy query at a time on its own thread, so a control loop keeps ticking
(`broker.ChunkBroker` uses it for asynchronous execution, and wherever a wait must end on a stop).

    worker = BackgroundQuery(policy)
    worker.submit(query, origin=queue.tick)   # the tick whose observation the query carries
    answer = worker.wait(timeout_s)           # None while it runs; an Answer once; raises what infer raised
    worker.close()

The thread is a daemon: a loop that ends on a stop (Ctrl-C, a safety stop) need not wait for a query in
flight (`close()`), and that query's answer is never read; a loop that ends on time lets it finish
(`close(wait_s)`), so the policy (a connection, say) is free for whoever uses it next.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .chunks import Policy, Query  # relative: the package ships as-is in the RoboTwin plug-in


@dataclass
class Answer:
    chunk: np.ndarray
    origin: int  # the tick of the observation it answers
    seconds: float  # how long the policy took


class BackgroundQuery:
    def __init__(self, policy: Policy, clock: Callable[[], float] = time.perf_counter):
        self.policy = policy
        self.clock = clock
        self._requests: queue.SimpleQueue[tuple[Query, int] | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._result: Answer | BaseException | None = None
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="evo1-policy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._requests.get()) is not None:
            query, origin = item
            start = self.clock()
            try:
                self._result = Answer(self.policy.infer([query])[0], origin, self.clock() - start)
            except BaseException as err:  # handed to the loop's thread, which raises it
                self._result = err
            self._done.set()

    def submit(self, query: Query, origin: int) -> None:
        if self.busy:
            raise RuntimeError("a query is already in flight")
        self.busy = True
        self._done.clear()
        self._requests.put((query, origin))

    def wait(self, timeout_s: float | None = 0.0) -> Answer | None:
        """The answer of the query in flight if it is done within `timeout_s` (0: just look; None: however
        long it takes), else None."""
        if not self.busy or not self._done.wait(timeout_s):
            return None
        self.busy = False
        result, self._result = self._result, None
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    def close(self, wait_s: float = 0.0) -> None:
        """End the thread once the query in flight (if any) is done; wait up to `wait_s` for that."""
        self._requests.put(None)
        if wait_s > 0:
            self._thread.join(wait_s)
