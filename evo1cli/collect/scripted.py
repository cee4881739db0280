"""A scripted person for the digital twin: demonstrations recorded through the real teleoperation loop.

The person does what someone at the arm would do, through the same keys (`teleop.Keys`):

    reset period   puts the scene back (the twin places the cube by the next seed), plans the pick-and-place
                   with the arm holding (`pause`: the safety layer's idle(); no camera is read while resetting),
                   rests the hand at home a moment so every camera delivers again, then presses `s`
    recording      moves the leader arm (SO-100) or the arm itself in teach mode (xArm6, pressing `g` where the
                   plan closes or opens the gripper) along the scene's scripted pick-and-place (inverse kinematics
                   on the twin), waits for things to settle, and presses `s` if the cube is in the container, `d`
                   if the attempt failed

Attempt k uses placement seed `seed + k` (a discarded attempt still uses up its seed), so a collection is
reproducible; `evo1 deploy --sim` evaluates on seeds a block away, never met here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error

SETTLE_S = 0.6  # after the trajectory ends, before judging the attempt
GIVE_UP = 5  # failed attempts in a row after which the person stops (something is wrong with the setup)
RESET_S = 0.5  # the hand rests at home this long after the scene is reset
FRESH_FRAMES = 3  # ... and until the cameras delivered this many frames since (saving and planning stall them)


class ScriptedOperator:
    def __init__(
        self,
        twin: Any,
        seed: int,
        pause: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.twin, self.world, self.seed, self.pause, self.clock = twin, twin.world, seed, pause, clock
        self.attempts = 0  # placements used (saved or discarded)
        self.successes = 0
        self.home = np.asarray(self.world.scene.home, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.phase = "reset"
        self.since: float | None = None
        self.plan: Any = None
        self.failures = 0  # failed attempts in a row
        self.fresh = 0  # the camera frame count that recording waits for
        # A hand-guided arm (no leader): the hand moves the joints, `g` the motor-driven gripper.
        self.keys_gripper = twin.hardware.leader is None
        low, high = self.world.model.jnt_range[self.world.model.joint(self.world.scene.joints[-1]).id]
        self.gripper_middle = (low + high) / 2
        self.closed = bool(self.home[-1] < self.gripper_middle)
        self.twin.hardware.guide(None, self.home)

    @property
    def placement_seed(self) -> int:
        return self.seed + self.attempts

    def poll(self) -> str | None:
        now = self.clock()
        if self.phase == "reset":
            if self.since is None:
                self.twin.hardware.guide(None, self.home)
                self.world.reset(self.placement_seed)
                with self.pause():
                    self.plan = self.world.plan(self.rng)
                self.since, self.fresh = self.clock(), self.world.rendered + FRESH_FRAMES
            elif now - self.since >= RESET_S and self.world.rendered >= self.fresh:
                self.phase = "record"
                self.twin.hardware.guide(self.plan, None)
                self.since = now
                return "s"
            return None
        if self.keys_gripper:
            closed = bool(self.plan.at(now - self.since)[-1] < self.gripper_middle)
            if closed != self.closed:
                self.closed = closed
                return "g"
        if now - self.since < self.plan.duration + SETTLE_S:
            return None
        success = self.world.success()
        self.successes += success
        self.attempts += 1
        self.failures = 0 if success else self.failures + 1
        if self.failures >= GIVE_UP:
            raise Evo1Error(f"the scripted person failed {GIVE_UP} attempts in a row (placements "
                            f"{self.placement_seed - GIVE_UP}..{self.placement_seed - 1}): the arm does not follow "
                            "its hand", field="--teleop")  # fmt: skip
        self.phase, self.since, self.plan = "reset", None, None
        return "s" if success else "d"

    def episode_fields(self) -> dict[str, Any]:
        """What the episode line records about the twin (its placement and whether it succeeded)."""
        return {"success": self.world.success(), "scene": self.world.scene.name, **self.world.placement.as_dict()}
