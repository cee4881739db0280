"""`TickClock`: the fixed-rate control tick every robot loop keeps (`evo1 deploy`, teleoperation).

    ticks = TickClock(1 / config.control_hz)
    while ticks.elapsed() < seconds:
        ...                       # observe, act, record
        ticks.wait()              # sleep until the next tick's slot

Tick k's slot ends at start + (k + 1) * period. The late-tick rule: a tick that ends after its slot counts
as over budget (`over_budget`) and the next tick starts at once, so a slightly late tick is made up by a
shorter one and the mean rate holds; a tick more than a whole period late restarts the schedule from
now, so a long stall (a slow query, a video commit) is not followed by a burst of catch-up ticks.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TickClock:
    def __init__(
        self,
        period_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.period_s, self.clock, self.sleep = period_s, clock, sleep
        self.over_budget = 0  # ticks that ended after their slot
        self.start = self._next = clock()

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return self.clock() - self.start

    def wait(self) -> None:
        """End this tick: sleep until the next one's slot (see the module docstring for a late tick)."""
        self._next += self.period_s
        now = self.clock()
        if now > self._next:
            self.over_budget += 1
            if now > self._next + self.period_s:  # a whole slot lost: restart the schedule from now
                self._next = now
        else:
            self.sleep(self._next - now)
