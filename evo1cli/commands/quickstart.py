"""`evo1 quickstart`: the offline main job, collect -> train -> evaluate, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console, print_json
from evo1cli.commands.train import training_display


def quickstart(
    name: str = typer.Option("single", "--suite", help="single (button-press-topdown-v3) or mt10 (ten tasks)."),
    robot: str | None = typer.Option(
        None, "--robot", help="so100 or xarm6: collect, train and deploy on the arm's digital twin (the sim extra)."
    ),
    recipe: Path | None = typer.Option(None, "--recipe", "-r", help="Recipe (default: --suite's in recipes/)."),
    out: Path | None = typer.Option(None, "--out", help="Training output (runs/quickstart; mt10: runs/mt10)."),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset, collected if missing (data/quickstart; mt10: data/mt10)."
    ),
    episodes: int | None = typer.Option(None, "--episodes", help="Demonstrations per task (40; mt10: 15)."),
    eval_episodes: int | None = typer.Option(
        None, "--eval-episodes", help="Evaluation episodes per task (20; mt10: 10)."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: --set stage1.steps=100."),
    workers: int = typer.Option(2, "--workers", help="Simulator processes during evaluation."),
    videos: int = typer.Option(0, "--videos", help="Evaluation episodes filmed per task (under OUT/evaluate/videos)."),
    swap: bool = typer.Option(
        True, "--swap/--no-swap", help="mt10: the same-scene pairs asked each other's instruction."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report for machines."),
) -> None:
    """Collect Meta-World demonstrations, train the tiny model in two stages, report its success rate.

    Offline and CPU-only. The single-task quickstart takes about 15 minutes on 2 cores; mt10 (one policy, ten tasks,
    evaluated with the authors' MT10 protocol) takes under 2 hours. Running it again resumes or skips finished
    phases.

    --robot so100|xarm6 runs the real-robot path on the arm's digital twin: a scripted person records
    demonstrations through the teleoperation loop, the tiny model trains on both cameras, and `evo1 deploy
    --sim`'s loop runs it on 20 placements collection never used (recipes/<robot>-twin.yaml).

    Examples:

      evo1 quickstart

      evo1 quickstart --suite mt10

      evo1 quickstart --robot so100

      evo1 quickstart --robot xarm6 --episodes 10 --eval-episodes 5 --set stage1.steps=200 --out runs/xarm6-small

      evo1 quickstart --episodes 10 --eval-episodes 5 --set stage1.steps=100 --set stage2.steps=20 --out runs/qs-small
    """
    from evo1cli.commands.bench import print_summary
    from evo1cli.errors import Evo1Error
    from evo1cli.quickstart import default_recipe, report_dict, swap_table
    from evo1cli.quickstart import quickstart as run

    given = [n for n in (episodes, eval_episodes) if n is not None]
    if min([*given, workers]) < 1 or videos < 0:
        raise Evo1Error("--episodes, --eval-episodes and --workers must be >= 1, --videos >= 0", field="options")
    if robot is not None:
        _robot(robot, recipe, out, data, episodes, eval_episodes, overrides, as_json)
        return
    recipe = recipe or default_recipe(name)
    with training_display(quiet=as_json) as display:
        report = run(
            recipe,
            name,
            out,
            data,
            episodes,
            eval_episodes,
            overrides=overrides,
            listener=display,
            progress=display.phase,
            workers=workers,
            videos=videos,
            swap=swap,
        )
    if as_json:
        print_json(report_dict(report))
        return
    s, c = report.seconds, report.cpu_seconds
    successes = sum(r.success for r in report.results)
    if len(report.tasks) > 1:
        print_summary(report.info, report.files)
    console.print(
        f"{', '.join(report.tasks) if len(report.tasks) == 1 else name}: {successes}/{len(report.results)} episodes "
        f"solved, {report.success_rate:.0%} success (mean over tasks; trained on {report.episodes} demonstrations, "
        f"{report.frames} frames)\n"
        "time: " + ", ".join(f"{k} {s[k]:.0f} s ({c[k]:.0f} CPU s)" for k in s) + f"; checkpoint {report.checkpoint}"
    )
    for task, row in swap_table(report).items():
        console.print(
            f"swap: {task} scene asked {row['asked']!r}: did the scene's task in {row['scene_task_done']}/"
            f"{row['episodes']} (with its own instruction {row['own_instruction_solved']}/"
            f"{row['own_instruction_episodes']})"
        )


def _robot(
    robot: str,
    recipe: Path | None,
    out: Path | None,
    data: Path | None,
    episodes: int | None,
    eval_episodes: int | None,
    overrides: list[str],
    as_json: bool,
) -> None:
    from evo1cli.quickstart_robot import default_recipe, plan, robot_quickstart

    chosen = plan(robot, recipe or default_recipe(robot), overrides, out, data, episodes, eval_episodes)
    with training_display(quiet=as_json) as display:
        report = robot_quickstart(chosen, listener=display, progress=display.phase, say=lambda line: None)
    if as_json:
        print_json(report.as_dict())
        return
    s, c, deployed = report.seconds, report.cpu_seconds, report.deploy
    successes = sum(e["success"] for e in deployed["episodes"])
    console.print(
        f"{report.robot} twin ({report.scene}): {successes}/{deployed['episodes_run']} placements solved, "
        f"{report.success_rate:.0%} success (trained on {report.demonstrations} demonstrations, {report.frames} "
        f"frames)\ntime: "
        + ", ".join(f"{k} {s[k]:.0f} s ({c[k]:.0f} CPU s)" for k in s)
        + f"; peak memory {report.peak_memory_mb:.0f} MB; checkpoint {report.checkpoint}; videos in "
        f"{chosen.recipe.output / 'deploy'}"
    )
