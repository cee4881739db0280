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
from pathlib import Path

from evo1cli.collect.dataset import FrameSpec, Recorder, RecordingSummary, open_dataset
from evo1cli.data.writer import DatasetWriter
from evo1cli.sim.metaworld import (
    CAMERA,
    MAX_PATH_LENGTH,
    MetaWorldEnv,
    ScriptedExpert,
    episode_variation,
)

FPS = 80  # Meta-World's control rate: frame_skip 5 x timestep 2.5 ms
STATE_NAMES = ("hand_x", "hand_y", "hand_z", "gripper", "obj_x", "obj_y", "obj_z", "obj_qw")
ACTION_NAMES = ("dx", "dy", "dz", "gripper")


def frame_spec(image_size: int, cameras: tuple[str, ...]) -> FrameSpec:
    return FrameSpec(
        FPS, STATE_NAMES, ACTION_NAMES, tuple((c, image_size, image_size) for c in cameras), "metaworld_sawyer"
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
    version: str | None = None,
) -> RecordingSummary:
    """Record `episodes` successful expert episodes per task into `out` (created in layout `version`, v2.1 by
    default, or appended to in its own layout)."""
    writer = open_dataset(out, frame_spec(image_size, cameras), version)
    summary = RecordingSummary()
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
    with Recorder(writer, env.prompt) as episode:
        for _ in range(max_steps):
            action = expert(obs)
            episode.add(env.state(obs), action, {c: env.image(c) for c in cameras})
            obs, solved, truncated = env.step(action)
            success = success or solved
            if (success and until_success) or truncated:
                break
        length = episode.frames
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
