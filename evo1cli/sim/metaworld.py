"""Meta-World (v3 tasks, `metaworld` 3.1.1) as Evo-1 sees it: one camera, an 8-d state, 4-d actions.

    env = MetaWorldEnv("reach-v3", seed=3, variation=7, image_size=448)
    obs = env.reset()                       # (39,) float64
    env.image()                             # corner2, the authors' pipeline: render 480x480, turn 180
                                            # degrees, centre-crop 2/3 (320 px), resize bilinearly
    env.state(obs)                          # the first 8 entries: hand xyz, gripper, object xyz, quat w
    obs, success, done = env.step(action)   # action clipped to [-1, 1]

A task variation (the goal and object placement) is `MT1(task, seed).train_tasks[variation]`;
`reset(seed=...)` is ignored by Meta-World, so (seed, variation) is what makes an episode reproducible.
Rendering is headless (MUJOCO_GL=egl unless set). `fast_render` turns shadows, reflections and the
offscreen multisampling (4x MSAA) off: about 4x faster per frame on a CPU renderer, edges slightly harder.

The authors' MT50 evaluation draws its variations differently: `gym.make_vec("Meta-World/MT50", seed=4042)`
amounts to `MT50(seed=4042)`'s tasks for the env, `env.seed(4042)`, and per episode
`env.set_task(tasks[env.np_random.choice(50)])` (their `reset(seed=4042 + ep)` is ignored). `MT50(seed)`
variations are not `MT1(task, seed)`'s; a benchmark that reproduces their protocol must draw them that way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_bytes
from evo1cli.sim.metaworld_tasks import PROMPTS

os.environ.setdefault("MUJOCO_GL", "egl")

CAMERA = "corner2"
RENDER_SIZE = 480
CROP = 2 / 3
STATE_DIM, ACTION_DIM = 8, 4
MAX_PATH_LENGTH = 500  # Meta-World truncates here


def _metaworld() -> Any:
    try:
        import metaworld
    except ImportError as err:
        raise Evo1Error(f"Meta-World is not installed ({err}); pip install 'evo1[metaworld]'", field="robot") from None
    return metaworld


def camera_image(frame: np.ndarray, size: int) -> np.ndarray:
    """A raw corner2 render -> what the policy sees: turned 180 degrees, centre 2/3, resized to size."""
    frame = frame[::-1, ::-1]
    height, width = frame.shape[:2]
    ch, cw = round(height * CROP), round(width * CROP)
    top, left = (height - ch) // 2, (width - cw) // 2
    crop = np.ascontiguousarray(frame[top : top + ch, left : left + cw])
    if crop.shape[:2] != (size, size):
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    return crop


def episode_variation(seed: int) -> int:
    """The task variation (of 50) that an episode seeded `seed` uses, in collection and evaluation."""
    return int(np.random.default_rng(seed).integers(50))


def mt50_variations(seed: int, cache_dir: Path | None = None) -> dict[str, list[Any]]:
    """`MT50(seed)`'s 50 variations of each task, as `gym.make_vec("Meta-World/MT50", seed)` gives them.

    Building `MT50(seed)` instantiates every environment (about a minute here), so the result is cached
    on disk per Meta-World version and seed (in `~/.cache/evo1cli` unless `cache_dir`).
    """
    metaworld = _metaworld()
    from importlib.metadata import version

    cache_dir = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evo1cli"
    path = cache_dir / f"metaworld-{version('metaworld')}-mt50-seed{seed}.pkl"
    if path.is_file():
        with contextlib.suppress(Exception):  # a stale or cut file is rebuilt
            return pickle.loads(path.read_bytes())
    benchmark = metaworld.MT50(seed=seed)
    variations: dict[str, list[Any]] = {}
    for variation in benchmark.train_tasks:
        variations.setdefault(variation.env_name, []).append(variation)
    atomic_write_bytes(path, pickle.dumps(variations))
    return variations


class MetaWorldEnv:
    """One task's environment. `variation` picks from `variations` (default: `MT1(task, seed)`'s 50)."""

    def __init__(
        self,
        task: str,
        seed: int,
        variation: int,
        image_size: int = 448,
        render: bool = True,
        variations: list[Any] | None = None,
        fast_render: bool = False,
    ):
        if task not in PROMPTS:
            raise Evo1Error(f"unknown Meta-World task {task!r}", field="task")
        metaworld = _metaworld()
        self.task, self.seed, self.variation = task, seed, variation
        self.prompt = PROMPTS[task]
        self.image_size = image_size
        if variations is None:
            benchmark = metaworld.MT1(task, seed=seed)
            variations = benchmark.train_tasks
        self.variations = variations
        kwargs: dict[str, Any] = {}
        if render:
            kwargs = {"render_mode": "rgb_array", "camera_name": CAMERA, "width": RENDER_SIZE, "height": RENDER_SIZE}
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.env = ALL_V3_ENVIRONMENTS[task](**kwargs)
        self.env.set_task(variations[variation % len(variations)])
        self.env.seed(seed)
        self.fast_render, self._fast = fast_render, False
        self.steps = 0

    def draw_variation(self) -> int:
        """The authors' MT50 protocol: each episode's variation is `np_random.choice(50)` of the env,
        which `env.seed(seed)` seeded (Meta-World's `RandomTaskSelectWrapper`)."""
        self.variation = int(self.env.np_random.choice(len(self.variations)))
        self.env.set_task(self.variations[self.variation])
        return self.variation

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self.steps = 0
        return np.asarray(obs, dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        """Apply a 4-d action (clipped to [-1, 1]); returns (observation, success, truncated)."""
        action = np.clip(np.asarray(action, dtype=np.float64)[:ACTION_DIM], -1.0, 1.0)
        obs, _, _, truncated, info = self.env.step(action)
        self.steps += 1
        return np.asarray(obs, dtype=np.float64), bool(info["success"] >= 1.0), bool(truncated)

    def image(self, camera: str = CAMERA) -> np.ndarray:
        """What the policy sees from `camera` (corner2 by default; any camera of the scene works)."""
        import mujoco

        if self.fast_render and not self._fast:  # the viewer exists after the first render call
            self.env.model.vis.quality.offsamples = 0  # read when the first render creates the GL context
            self.env.render()
            scene = self.env.mujoco_renderer._get_viewer("rgb_array").scn
            scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            self._fast = True
        camera_id = mujoco.mj_name2id(self.env.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if camera_id < 0:
            raise Evo1Error(f"no camera {camera!r} in the scene", field="cameras")
        self.env.mujoco_renderer.camera_id = camera_id
        return camera_image(self.env.render(), self.image_size)

    @staticmethod
    def state(obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs[:STATE_DIM], dtype=np.float32)

    def close(self) -> None:
        self.env.close()


class ScriptedExpert:
    """Meta-World's hand-written policy for a task (`metaworld.policies.ENV_POLICY_MAP`)."""

    def __init__(self, task: str):
        _metaworld()
        from metaworld.policies import ENV_POLICY_MAP

        # Some experts' gains exceed the action range; we clip, so their warning says nothing new.
        warnings.filterwarnings("ignore", message="Constant.* may be too high", category=UserWarning)
        self.policy = ENV_POLICY_MAP[task]()
        self.name = type(self.policy).__name__

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(self.policy.get_action(obs), -1.0, 1.0).astype(np.float32)
