"""What a twin gives the session: the driver's hardware factories and the person's hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo1cli.sim.twin.scene import Trajectory


@dataclass
class TwinHardware:
    follower: Callable[..., Any]  # what the driver gets (xArm6: api_factory; SO-100: port_handler_factory)
    leader: Callable[..., Any] | None  # SO-100's leader port_handler_factory; None for the xArm6
    # The person's hand: from now on move along the trajectory (MJCF units, times from now), or hold at the pose
    # (MJCF units). SO-100: the leader arm; xArm6: the arm itself in teach mode.
    guide: Callable[[Trajectory | None, np.ndarray | None], None]
    # Calibration: a hand moves every joint of the follower (False) or the leader (True) through its whole range.
    sweep: Callable[[bool], None] | None = None
