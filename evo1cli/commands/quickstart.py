"""`evo1 quickstart`: the offline main job, collect -> train -> evaluate, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console, print_json
from evo1cli.commands.train import training_display


def quickstart(
    recipe: Path = typer.Option(Path("recipes/quickstart.yaml"), "--recipe", "-r", help="The quickstart recipe."),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Training output directory."),
    data: Path = typer.Option(Path("data/quickstart"), "--data", help="Dataset directory (collected if missing)."),
    episodes: int = typer.Option(40, "--episodes", help="Demonstrations to collect."),
    eval_episodes: int = typer.Option(20, "--eval-episodes", help="Closed-loop evaluation episodes."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: --set stage1.steps=100."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report for machines."),
) -> None:
    """Collect Meta-World demonstrations, train the tiny model in two stages, report its success rate.

    Offline and CPU-only; about 15 minutes on 2 cores. Running it again resumes or skips finished phases.

    Examples:

      evo1 quickstart

      evo1 quickstart --episodes 10 --eval-episodes 5 --set stage1.steps=100 --set stage2.steps=20 --out runs/qs-small
    """
    from evo1cli.quickstart import quickstart as run
    from evo1cli.quickstart import report_dict

    with training_display(quiet=as_json) as display:
        report = run(
            recipe, out, data, episodes, eval_episodes, overrides=overrides, listener=display, progress=display.phase
        )
    if as_json:
        print_json(report_dict(report))
        return
    s = report.seconds
    successes = sum(r.success for r in report.results)
    console.print(
        f"{report.task}: {successes}/{len(report.results)} episodes solved = {report.success_rate:.0%} success "
        f"(trained on {report.episodes} demonstrations, {report.frames} frames)\n"
        f"time: collect {s['collect']:.0f} s, train {s['train']:.0f} s, evaluate {s['evaluate']:.0f} s; "
        f"checkpoint {report.checkpoint}"
    )
