"""The action queue's timing rules, on a fake clock: due, skip, stale, blend, and asking ahead by latency."""

from __future__ import annotations

import numpy as np
import pytest

from evo1cli.client.chunks import ActionQueue, LatencyEstimate, lead_ticks

PERIOD = 1 / 30


def plan(origin: int, length: int = 50) -> np.ndarray:
    """A chunk whose action k is the tick it is meant for (origin + k): a policy that knows the time."""
    return (origin + np.arange(length, dtype=np.float64))[:, None]


def test_sync_use_execute_actions_then_due():
    q = ActionQueue(execute=3)
    assert q.due and not q.available and q.remaining == 0
    assert q.push(plan(0, 5)) == 0
    assert [q.pop()[0] for _ in range(3)] == [0, 1, 2]
    assert q.due and q.available  # due after `execute`, though the chunk has 2 more
    q.push(plan(3, 2))  # a chunk shorter than `execute` is due when it runs out
    q.pop(), q.pop()
    assert q.due and not q.available
    with pytest.raises(IndexError):
        q.pop()
    whole = ActionQueue()
    whole.push(plan(0, 4))
    assert whole.remaining == 4


def test_actions_whose_tick_went_by_are_skipped():
    q = ActionQueue(execute=10)
    q.push(plan(0))
    for _ in range(7):
        q.pop()
    assert q.push(plan(4), origin=4) == 3  # asked at tick 4, arrived at tick 7: actions 0-2 are past
    assert q.pop()[0] == 7 and q.skipped == 3 and q.index == 4 and q.remaining == 6


def test_stale_chunks_are_never_executed():
    q = ActionQueue(execute=10)
    q.push(plan(0))
    for _ in range(6):
        q.pop()
    q.push(plan(5), origin=5)
    assert q.push(-plan(2), origin=2) is None  # answers an older observation than the one running
    assert q.push(-plan(0, 4), origin=0) is None  # all of its actions are in the past
    assert q.dropped == 2 and q.pop()[0] == 6  # still the chunk of tick 5
    with pytest.raises(ValueError, match="cannot arrive"):
        q.push(plan(9), origin=9)


def test_a_switch_is_blended_over_the_given_ticks():
    q = ActionQueue(execute=20, blend=3)
    q.push(np.zeros((20, 2)))
    for _ in range(10):
        q.pop()
    q.push(np.ones((30, 2)), origin=10)
    steps = [q.pop()[0] for _ in range(5)]
    assert steps == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    # where the old chunk has no action left for a tick, the new one is used as it is
    q = ActionQueue(execute=4, blend=3)
    q.push(np.zeros((5, 1)))
    for _ in range(4):
        q.pop()
    q.push(np.ones((10, 1)))
    assert [q.pop()[0] for _ in range(3)] == pytest.approx([0.25, 1.0, 1.0])
    # two plans that agree in time blend to the same plan: no step at the switch
    q = ActionQueue(execute=10, blend=4)
    q.push(plan(0))
    for _ in range(8):
        q.pop()
    q.push(plan(5), origin=5)
    assert [q.pop()[0] for _ in range(6)] == pytest.approx([8, 9, 10, 11, 12, 13])


def test_lead_from_latency_with_floor_and_override():
    assert lead_ticks(None, PERIOD) == 2  # nothing measured yet: the floor
    assert lead_ticks(0.010, PERIOD) == 2  # a fast GPU: the floor
    assert lead_ticks(0.300, PERIOD) == 10  # 9 ticks of latency, one spare
    assert lead_ticks(0.301, PERIOD) == 11
    assert lead_ticks(0.300, PERIOD, override=4) == 4
    assert lead_ticks(0.050, PERIOD, floor=5) == 5


def test_warm_up_latency_does_not_inflate_the_estimate():
    estimate = LatencyEstimate(window=3)
    estimate.add(4.0)  # the first query: allocations, kernels, a connection
    assert estimate.seconds is None
    for seconds in (0.30, 0.32, 0.29):
        estimate.add(seconds)
    assert estimate.seconds == pytest.approx(0.32)
    estimate.add(0.28)
    estimate.add(0.27)
    estimate.add(0.26)  # the slowest of the last 3
    assert estimate.seconds == pytest.approx(0.28)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(latencies_s, execute: int = 25, ticks: int = 300, blend: int = 3, lead: int | None = None):
    """An asynchronous loop on a fake clock, as `evo1 deploy --inference async` runs it: each tick takes
    an arrived chunk, asks ahead by the estimated latency, waits (the clock runs, no tick passes) if
    nothing is left, and executes one action. Query k takes latencies_s[k] seconds."""
    clock, q, estimate = FakeClock(), ActionQueue(execute, blend), LatencyEstimate()
    latencies = iter(latencies_s)
    flight: tuple[float, int, float] | None = None  # (arrival time, origin tick, latency)
    executed, waits, asked_at = [], 0, []

    def ask() -> tuple[float, int, float]:
        seconds = next(latencies)
        asked_at.append(q.tick)
        return clock() + seconds, q.tick, seconds

    def take(flight) -> None:
        _, origin, seconds = flight
        estimate.add(seconds)
        q.push(plan(origin), origin)

    estimate.add(next(latencies))  # the warm-up query, before the loop
    flight = ask()
    clock.now = flight[0]  # the first chunk, waited for before the loop starts
    take(flight)
    flight = None
    while q.tick < ticks:
        if flight is not None and clock() >= flight[0]:
            take(flight)
            flight = None
        if flight is None and q.remaining <= lead_ticks(estimate.seconds, PERIOD, override=lead):
            flight = ask()
        if not q.available:  # starving: hold until the answer is in
            waits += 1
            clock.now = max(clock.now, flight[0])
            take(flight)
            flight = None
            continue
        executed.append(q.pop()[0])
        clock.now += PERIOD
    return np.array(executed), waits, q, asked_at


def test_asking_ahead_by_the_latency_never_starves_and_stays_on_time():
    executed, waits, q, asked_at = simulate([3.0] + [0.3] * 200)  # a slow warm-up, then 300 ms per query
    assert waits == 0
    np.testing.assert_allclose(executed, np.arange(len(executed)))  # every tick runs its own planned action
    assert q.skipped > 0 and q.dropped == 0
    # 300 ms = 9 ticks: asked 10 actions before due, chunks switch every ~16 ticks (25 executed, 9 in flight)
    assert set(np.diff(asked_at[1:])) <= {15, 16}


def test_a_lead_shorter_than_the_latency_waits_and_says_so():
    # 1 s = 30 ticks; asked 2 actions before due (index 23), a 50-action chunk runs out at index 50
    executed, waits, q, _ = simulate([1.0] * 200, lead=2)
    assert waits > 0  # ran out of actions: held for the answer each time
    assert np.all(np.diff(executed) == 1)  # each answer resumes at the tick it stopped: nothing jumps
    assert q.dropped == 0


def test_a_latency_spike_is_absorbed_by_the_rest_of_the_chunk():
    latencies = [0.3] * 6 + [1.0] + [0.3] * 200  # one query takes 1 s: 30 ticks
    executed, waits, _, _ = simulate(latencies, execute=25)
    assert waits == 0  # the chunk (50 actions) still had actions for those ticks, past `execute`
    np.testing.assert_allclose(executed, np.arange(len(executed)))


# ------------------------------------------------------------------------------- the broker and the tick clock
class Counting:
    """A policy that knows the time: the chunk answers the query's `index` (a tick number) with `plan`."""

    def __init__(self, length: int = 5, delay_s: float = 0.0):
        self.length, self.delay_s, self.asked = length, delay_s, []
        self.metadata: dict = {}

    def infer(self, queries):
        import time

        time.sleep(self.delay_s)
        self.asked.extend(q.index for q in queries)
        return [plan(q.index, self.length) for q in queries]

    def close(self) -> None:
        pass


def test_sync_broker_observes_only_when_it_asks():
    from evo1cli.client.broker import ChunkBroker
    from evo1cli.client.chunks import Query

    policy, observed = Counting(length=5), []
    broker = ChunkBroker(policy, execute=3)

    def observe() -> Query:
        observed.append(broker.queue.tick)
        return Query([], (), "p", index=broker.queue.tick)

    actions = [broker.act(observe)[0] for _ in range(7)]
    assert actions == list(range(7)) and observed == [0, 3, 6] and policy.asked == [0, 3, 6]
    assert broker.queries == broker.waits == 3 and len(broker.infer_s) == 3
    broker.reset()
    assert broker.act(observe)[0] == 0 and broker.queue.tick == 1  # a new episode starts a new chunk


def test_async_broker_asks_ahead_and_a_threaded_wait_ends_on_a_stop():
    from evo1cli.client.broker import ChunkBroker
    from evo1cli.client.chunks import Query

    broker = ChunkBroker(Counting(length=8), execute=6, asynchronous=True, period_s=0.001, lead=2)
    observe = lambda: Query([], (), "p", index=broker.queue.tick)  # noqa: E731
    assert broker.warm_up(observe) and broker.queries == 1
    actions = [broker.act(observe)[0] for _ in range(20)]
    assert actions == list(range(20))  # every tick's own action, whenever its chunk arrived
    assert broker.queries > 3 and broker.lead == 2
    broker.close()
    stop = [False]
    slow = ChunkBroker(Counting(delay_s=5.0), threaded=True, period_s=0.01, stopped=lambda: stop[0])
    import threading
    import time

    threading.Timer(0.1, lambda: stop.__setitem__(0, True)).start()
    start = time.monotonic()
    assert slow.act(observe) is None and time.monotonic() - start < 1.0
    slow.close()


def test_tick_clock_late_tick_rule():
    from evo1cli.robots.ticks import TickClock

    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    ticks = TickClock(0.1, clock=lambda: now[0], sleep=sleep)
    now[0] += 0.02  # on time: sleep to the slot's end
    ticks.wait()
    now[0] += 0.13  # 0.03 late: no sleep, the next tick is shorter to make it up
    ticks.wait()
    now[0] += 0.05
    ticks.wait()
    assert slept == [0.08, 0.02] and ticks.over_budget == 1 and now[0] == pytest.approx(0.3)
    now[0] += 0.35  # more than a whole period late: the schedule restarts from now
    ticks.wait()
    now[0] += 0.04
    ticks.wait()
    assert ticks.over_budget == 2 and slept[-1] == pytest.approx(0.06) and ticks.elapsed() == pytest.approx(0.75)
