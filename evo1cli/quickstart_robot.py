"""`evo1 quickstart --robot so100|xarm6`: the real-robot path end to end on the arm's digital twin.

    1. collect   a scripted person records demonstrations through the real teleoperation loop (leader arm or
                 teach mode, the keys, the safety layer, the recorder) until the dataset holds `collect.episodes`
    2. train     both stages of the recipe (resumes an interrupted run)
    3. deploy    `evo1 deploy --sim`'s loop on `evaluation.episodes` placements collection never used

The recipe (recipes/<robot>-twin.yaml) names the scene and the evaluation's settings under `evaluation:`
(suite: twin, scene, episodes, image_size, action_steps, inference). Every phase resumes: running it again
appends only the missing demonstrations, resumes training, and deploys again.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo1cli.collect.teleop import TeleopOptions, collect_teleop
from evo1cli.data.format import load_meta
from evo1cli.deploy.episodes import report, run_twin_episodes, view_check
from evo1cli.deploy.rollout import INFERENCE, Execution
from evo1cli.errors import Evo1Error
from evo1cli.quickstart import PhaseClock, one_dataset_recipe
from evo1cli.quickstart import default_recipe as quickstart_recipe
from evo1cli.robots.session import RobotSession, load_robot
from evo1cli.runtime.policy import open_checkpoint
from evo1cli.sim.twin import open_scene
from evo1cli.sim.twin.scene import COLLECT_SEED_BLOCK
from evo1cli.train.recipe import Recipe
from evo1cli.train.trainer import Listener, train

RECIPES = {"so100": "so100-twin.yaml", "xarm6": "xarm6-twin.yaml"}


@dataclass(frozen=True)
class TwinPlan:
    robot: str
    recipe: Recipe
    data: Path
    scene: str
    demonstrations: int
    episodes: int  # deployed
    image_size: int
    action_steps: int
    inference: str


@dataclass
class TwinQuickstartReport:
    robot: str
    scene: str
    dataset: Path
    demonstrations: int
    frames: int
    checkpoint: Path
    success_rate: float
    deploy: dict[str, Any]  # deploy --sim's report
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "robot": self.robot,
            "scene": self.scene,
            "dataset": str(self.dataset),
            "demonstrations": self.demonstrations,
            "frames": self.frames,
            "checkpoint": str(self.checkpoint),
            "success_rate": self.success_rate,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "cpu_seconds": {k: round(v, 1) for k, v in self.cpu_seconds.items()},
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "deploy": self.deploy,
        }


def default_recipe(robot: str) -> Path:
    return quickstart_recipe(robot, RECIPES, "--robot")


def plan(
    robot: str,
    recipe_path: Path,
    overrides: list[str],
    out: Path | None = None,
    data: Path | None = None,
    episodes: int | None = None,
    eval_episodes: int | None = None,
) -> TwinPlan:
    recipe, data = one_dataset_recipe(recipe_path, overrides, out, data)
    evaluation = recipe.evaluation
    if evaluation is None or evaluation.suite != "twin":
        raise Evo1Error("a robot quickstart deploys in the twin: evaluation.suite must be twin", path=recipe_path,
                        field="evaluation.suite")  # fmt: skip
    settings = dict(evaluation.settings)
    known = {"scene", "episodes", "image_size", "action_steps", "inference"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise Evo1Error(f"unknown setting (twin: {', '.join(sorted(known))})", path=recipe_path,
                        field=f"evaluation.{unknown[0]}")  # fmt: skip
    scene = open_scene(robot, settings.get("scene")).name
    inference = str(settings.get("inference", "sync"))
    if inference not in INFERENCE:
        raise Evo1Error(f"must be sync or async, got {inference!r}", path=recipe_path, field="evaluation.inference")
    demonstrations = episodes or (recipe.collect.episodes if recipe.collect else 0)
    numbers = {
        "episodes": eval_episodes or int(settings.get("episodes", 20)),
        "image_size": int(settings.get("image_size", recipe.model.image_size)),
        "action_steps": int(settings.get("action_steps", 8)),
    }
    for name, value in numbers.items():
        if value < 1:
            raise Evo1Error(f"must be >= 1, got {value}", path=recipe_path, field=f"evaluation.{name}")
    if demonstrations < 1:
        raise Evo1Error("missing: demonstrations to collect (collect: {episodes: N})", path=recipe_path,
                        field="collect")  # fmt: skip
    return TwinPlan(robot, recipe, data, scene, demonstrations, numbers["episodes"], numbers["image_size"],
                    numbers["action_steps"], inference)  # fmt: skip


def robot_config(chosen: TwinPlan) -> Any:
    """The packaged robot configuration on the twin, its cameras at the plan's square size."""
    from evo1cli.robots.config import default_config_path, load_robot_config

    cameras = load_robot_config(default_config_path(chosen.robot), [], robot=chosen.robot).cameras
    size = [f"cameras.{c.name}.{side}={chosen.image_size}" for c in cameras for side in ("width", "height")]
    return load_robot(chosen.robot, None, size, sim=True, scene=chosen.scene)


def _peak_memory_mb() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return max(own.ru_maxrss, children.ru_maxrss) / 1024


def collect_demonstrations(
    chosen: TwinPlan, config: Any, progress: Callable[[str, int, int], None] | None, say: Callable[[str], None]
) -> None:
    """Append scripted demonstrations until the dataset holds `chosen.demonstrations`; attempts continue after
    the placement seeds already recorded."""
    have, next_seed = 0, 0
    if (chosen.data / "meta" / "info.json").is_file():
        episodes = load_meta(chosen.data).episodes
        have = len(episodes)
        seeds = [e.extra.get("seed") for e in episodes if isinstance(e.extra.get("seed"), int)]
        next_seed = max(seeds, default=-1) + 1
    missing = chosen.demonstrations - have
    if missing <= 0:
        return
    scene = open_scene(chosen.robot, chosen.scene)

    def status(line: str) -> None:
        if progress is not None and line.startswith("episode "):
            kept = int(line.split()[1].split("/")[0]) - 1
            progress("collect", have + kept, chosen.demonstrations)

    options = TeleopOptions(missing, scene.episode_s + 10, 5.0, "scripted", seed=next_seed)
    summary = collect_teleop(config, scene.instruction, chosen.data, options, say=say, status=status)
    if summary.interrupted:  # never train on a collection cut short: run again to append the rest
        why = f"safety stop ({summary.stopped})" if summary.stopped else "Ctrl-C"
        raise Evo1Error(f"collection ended by {why} after {have + summary.kept} of {chosen.demonstrations} "
                        "demonstrations (kept): run again to append the rest", path=chosen.data)  # fmt: skip


def robot_quickstart(
    chosen: TwinPlan,
    listener: Listener | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    say: Callable[[str], None] = print,
) -> TwinQuickstartReport:
    config, clock = robot_config(chosen), PhaseClock()
    recipe, group = chosen.recipe, chosen.recipe.data.groups[0]
    with clock.phase("collect"):
        collect_demonstrations(chosen, config, progress, say)
        meta = load_meta(chosen.data)
    with clock.phase("train"):
        results = train(recipe, (1, 2), resume=True, listener=listener)
        checkpoint = results[-1].checkpoint
    if results[-1].interrupted:
        raise KeyboardInterrupt
    scene = open_scene(chosen.robot, chosen.scene)
    with clock.phase("deploy"):
        policy = open_checkpoint(checkpoint, dtype="float32", embodiment=group.embodiment, dataset=group.dataset)
        seeds = [COLLECT_SEED_BLOCK + k for k in range(chosen.episodes)]

        def done(episode: Any) -> None:
            if progress is not None:
                progress("deploy", episode.index + 1, len(seeds))

        execution = Execution(chosen.action_steps, chosen.inference)
        prints: dict[str, Any] = {}
        with RobotSession(config) as session:
            out = recipe.output / "deploy"
            episodes = run_twin_episodes(session, policy, scene.instruction, execution, seeds=seeds,
                                         episode_s=scene.episode_s, videos=out, done=done, prints=prints)  # fmt: skip
        views = view_check(policy.trained_views(), prints)
        summary = report(chosen.robot, scene.name, episodes, chosen.inference, views)
    return TwinQuickstartReport(
        robot=chosen.robot,
        scene=scene.name,
        dataset=chosen.data,
        demonstrations=len(meta.episodes),
        frames=sum(e.length for e in meta.episodes),
        checkpoint=checkpoint,
        success_rate=summary["success_rate"],
        deploy=summary,
        seconds=clock.seconds,
        cpu_seconds=clock.cpu_seconds,
        peak_memory_mb=_peak_memory_mb(),
    )
