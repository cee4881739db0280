"""Scripted-expert demonstrations from Meta-World.

Episode k of a dataset (its global episode index) uses seed `seed + k` and a task variation drawn from
that seed, so every episode differs, appending continues the sequence, and each one is reproducible from
what its episodes.jsonl line records: task, seed, variation, expert, success.

Per frame: the corner2 image, or those of the chosen cameras (`evo1cli.sim.metaworld.camera_image`),
state = the first 8 observation entries, action = the expert's 4-d action clipped to [-1, 1], task = the
prompt of the paper's Table 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evo1cli.data.format import ACTION, STATE, vector_feature
from evo1cli.data.writer import Camera, DatasetWriter
from evo1cli.sim.metaworld import (
    ACTION_DIM,
    CAMERA,
    MAX_PATH_LENGTH,
    STATE_DIM,
    MetaWorldEnv,
    ScriptedExpert,
    episode_variation,
)

FPS = 80  # Meta-World's control rate: frame_skip 5 x timestep 2.5 ms
STATE_NAMES = ["hand_x", "hand_y", "hand_z", "gripper", "obj_x", "obj_y", "obj_z", "obj_qw"]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]


@dataclass
class CollectSummary:
    kept: int = 0
    failed: int = 0  # episodes the expert did not solve (dropped unless kept)
    frames: int = 0


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def open_dataset(out: str | Path, image_size: int, cameras: list[str]) -> DatasetWriter:
    return DatasetWriter(
        out,
        FPS,
        {STATE: vector_feature(STATE_DIM, STATE_NAMES), ACTION: vector_feature(ACTION_DIM, ACTION_NAMES)},
        [Camera(image_key(c), image_size, image_size) for c in cameras],
        robot_type="metaworld_sawyer",
    )


def collect(
    out: str | Path,
    tasks: list[str],
    episodes: int,
    image_size: int = 448,
    seed: int = 0,
    max_steps: int = MAX_PATH_LENGTH,
    until_success: bool = True,
    keep_failures: bool = False,
    cameras: tuple[str, ...] = (CAMERA,),
    fast_render: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CollectSummary:
    """Record `episodes` successful expert episodes per task into `out` (created, or appended to)."""
    writer = open_dataset(out, image_size, list(cameras))
    summary = CollectSummary()
    total = episodes * len(tasks)
    for task in tasks:
        expert = ScriptedExpert(task)
        kept_here = 0
        while kept_here < episodes:
            index = len(writer.meta.episodes)
            episode_seed = seed + index + summary.failed
            env = MetaWorldEnv(task, episode_seed, episode_variation(episode_seed), image_size, fast_render=fast_render)
            try:
                if keep_failures or _rehearse(env, expert, max_steps):
                    success, length = _record(writer, env, expert, cameras, max_steps, until_success, keep_failures)
                else:
                    success, length = False, 0
            finally:
                env.close()
            if success or keep_failures:
                kept_here += 1
                summary.kept += 1
                summary.frames += length
            else:
                summary.failed += 1
                if summary.failed > 10 * (summary.kept + 1):
                    break  # this expert cannot solve the task: give up rather than loop forever
            if progress:
                progress(summary.kept, total)
    return summary


def _rehearse(env: MetaWorldEnv, expert: ScriptedExpert, max_steps: int) -> bool:
    """Whether the expert solves this episode, found without rendering (a failure then costs physics only).

    A reset restores the same variation, and the expert is deterministic, so the recording repeats it.
    """
    obs = env.reset()
    for _ in range(max_steps):
        obs, solved, truncated = env.step(expert(obs))
        if solved:
            return True
        if truncated:
            break
    return False


def _record(
    writer: DatasetWriter,
    env: MetaWorldEnv,
    expert: ScriptedExpert,
    cameras: tuple[str, ...],
    max_steps: int,
    until_success: bool,
    keep_failures: bool,
) -> tuple[bool, int]:
    obs = env.reset()
    success = False
    with writer.episode() as episode:
        for _ in range(max_steps):
            action = expert(obs)
            images = {image_key(c): env.image(c) for c in cameras}
            episode.add_frame({STATE: env.state(obs), ACTION: action}, images, env.prompt)
            obs, solved, truncated = env.step(action)
            success = success or solved
            if (success and until_success) or truncated:
                break
        length = episode.length
        if success or keep_failures:
            episode.commit(
                task=env.task,
                seed=env.seed,
                variation=env.variation,
                expert=expert.name,
                success=success,
                fast_render=env.fast_render,
            )
    return success, length
