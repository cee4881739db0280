"""What a digital twin (`evo1cli.sim.twin`) hands the robot session: the drivers' hardware factories on the twin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo1cli.sim.twin.scene import Trajectory


@dataclass
class TwinHardware:
    """What a twin gives the session: the driver's hardware factories and the person's hand."""

    follower: Callable[..., Any]  # what the driver gets (xArm6: api_factory; SO-100: port_handler_factory)
    leader: Callable[..., Any] | None  # SO-100's leader port_handler_factory; None for the xArm6
    guide: Callable[[Trajectory | None, np.ndarray | None], None]
    # the person's hand: from now on move along the trajectory (MJCF units, times from now), or hold at the
    # pose (MJCF units). xArm6: the arm itself in teach mode (hand_guide on the api the driver created).
