"""What a twin scene is: a MuJoCo world of one robot setup with a task, its placements and its success test.

    scene = open_scene("so100", "so100-cube-container")   # evo1cli.sim.twin.open_scene
    model = scene.build()                            # compiled; offscreen framebuffer of at least 640x480
    data = mujoco.MjData(model)
    placement = scene.place(model, data, seed=7)     # reset: arm at home, the cube where seed 7 puts it
    plan = scene.plan(model, data, rng)              # the scripted pick-and-place from this state
    scene.success(model, data)                       # the cube inside the container, resting

Units at this level are MJCF's: joint angles in radians, the gripper in its own joint's units (a hinge angle
or a finger slide in metres). Hardware units (servo steps, degrees, gripper pulses) are the attachments'
business (`evo1cli.robots.fakes.twin_*`), so that the drivers above them see what a real arm reports.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error

os.environ.setdefault("MUJOCO_GL", "egl")

SIM_EXTRA = "pip install 'evo1cli[sim]'"
COLLECT_SEED_BLOCK = 1_000_000  # deploy's placements start this far past collection's, so they never meet
AIM_MISS_M = 0.03  # the scripted person's first aim over the cube misses it by up to this much, then corrects


def aim_miss(rng: np.random.Generator) -> np.ndarray:
    """A horizontal miss (x, y, 0) in metres, uniform over a disc of radius AIM_MISS_M.

    The scripted person's first aim over the cube misses by this much and is then corrected (the SO-100's at
    its hover, the xArm6's just above the cube), as a person's is: the demonstrations then show the states a
    policy's own misses lead to, and the way back from them (behaviour cloning's covariate shift)."""
    angle, radius = rng.uniform(0, 2 * np.pi), AIM_MISS_M * np.sqrt(rng.uniform(0, 1))
    return np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])


NO_GL = (
    "cannot render the twin headless ({err}): set MUJOCO_GL=egl (Debian: apt-get install libegl1 libegl-mesa0 "
    "libgl1-mesa-dri) or MUJOCO_GL=osmesa (libosmesa6)"
)


def no_gl(err: BaseException) -> Evo1Error:
    """The one line for a MuJoCo that cannot get an OpenGL context (it fails at import or at the first renderer)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return Evo1Error(NO_GL.format(err=f"{type(err).__name__}: {text}" if text else type(err).__name__), field="--sim")


def mujoco_module() -> Any:
    """`import mujoco`, or the one line saying which extra brings it (or what rendering needs)."""
    try:
        import mujoco
    except ImportError as err:
        raise Evo1Error(f"--sim needs MuJoCo ({err}): {SIM_EXTRA}", field="--sim") from None
    except Exception as err:  # MUJOCO_GL names a backend whose library is missing: mujoco fails importing it
        raise no_gl(err) from None
    return mujoco


def package_dir(package: str) -> Path:
    """Where an installed asset package lives, found without importing it (its own imports may need more)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Evo1Error(f"--sim needs the package {package}, which is not installed: {SIM_EXTRA}", field="--sim")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Trajectory:
    """Joint-space waypoints (MJCF units, the scene's `joints` order) at times in seconds from its start; the
    path between waypoints is linear. `events` names moments (e.g. {"grasp": 2.1, "release": 4.0})."""

    times: np.ndarray  # (K,) increasing, times[0] == 0
    points: np.ndarray  # (K, dof)
    events: Mapping[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """The point at time t (held at either end)."""
        t = min(max(t, 0.0), self.duration)
        return np.array([np.interp(t, self.times, self.points[:, j]) for j in range(self.points.shape[1])])


@dataclass(frozen=True)
class Placement:
    """Where a seed put things: the cube's xyz (and yaw), the container's xyz, in metres in the world frame."""

    seed: int
    cube: tuple[float, ...]
    container: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "cube": [round(v, 4) for v in self.cube], "container": list(self.container)}


class Scene(ABC):
    """One robot setup with one task. Subclasses set the class attributes and implement the four methods."""

    name: str  # e.g. "so100-cube-container"
    robot: str  # the robot config it sits under: "so100" | "xarm6"
    instruction: str  # the task prompt recorded with every episode
    joints: tuple[str, ...]  # MJCF joints the robot drives, in the robot config's joint order (gripper last)
    actuators: tuple[str, ...]  # MJCF position actuators driving `joints`, same order
    cameras: Mapping[str, str]  # robot config camera name -> MJCF camera name
    home: tuple[float, ...]  # the arm's rest pose, MJCF units, `joints` order
    episode_s: float = 20.0  # the longest an episode (demonstration or rollout) lasts

    @abstractmethod
    def build(self) -> Any:
        """The compiled `mujoco.MjModel` (offscreen framebuffer at least 640x480)."""

    @abstractmethod
    def place(self, model: Any, data: Any, seed: int) -> Placement:
        """Reset `data`: the arm at `home` (qpos and actuator targets), the cube where `seed` puts it; mj_forward."""

    @abstractmethod
    def success(self, model: Any, data: Any) -> bool:
        """The cube inside the container and resting there."""

    @abstractmethod
    def plan(self, model: Any, data: Any, rng: np.random.Generator) -> Trajectory:
        """The scripted pick-and-place from the current state (inverse kinematics on the twin, an approach
        randomised by `rng`, small human-like noise and pauses), ending back near home with the cube released."""
