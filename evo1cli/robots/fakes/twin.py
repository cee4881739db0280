"""What a twin attachment hands back: the simulated hardware a driver talks through, on top of a `TwinWorld`.

`evo1cli.robots.fakes.twin_so100.attach` and `twin_xarm6.attach` return a `TwinHardware`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo1cli.sim.twin.scene import Trajectory


@dataclass
class TwinHardware:
    follower: Callable[..., Any]  # what the driver gets as its SDK factory (SO-100: port_handler_factory)
    leader: Callable[..., Any] | None  # the leader arm's factory (SO-100: connection.leader_port), or None
    # the person's hand: from now on move the leader along a trajectory (MJCF units, times from now), or hold it
    # at a pose (MJCF units): guide(trajectory, hold)
    guide: Callable[[Trajectory | None, np.ndarray | None], None]
