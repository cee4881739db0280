"""`evo1 train`: the two training stages of a recipe, with a live display."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evo1cli.commands.output import console, print_json
from evo1cli.errors import Evo1Error

STAGE_CHOICES = {"1": (1,), "2": (2,), "all": (1, 2)}


def train(
    recipe: Path = typer.Option(..., "--recipe", "-r", help="Recipe YAML (see recipes/)."),
    stage: str = typer.Option("all", "--stage", help="1 (backbone frozen), 2 (everything) or all."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: --set stage1.steps=200."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint under --out."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: the recipe's `output`)."),
    init: Path | None = typer.Option(
        None, "--init", help="Start the first stage run from this checkpoint (evo1, authors', LeRobot or hub id)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Validate the recipe and check that its datasets fit the model, then stop."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary for machines."),
) -> None:
    """Train a policy: stage 1 (backbone frozen), then stage 2 (everything), per a recipe.

    Runs in one process by default; under `accelerate launch` on N processes or machines (DDP).
    Checkpoints land in OUT/stage{1,2}/checkpoints/<step>/ with a `last` link; each one is a
    policy that `evo1 serve` and `evo1 model predict` load as it is.

    Examples:

      evo1 train --recipe recipes/quickstart.yaml

      evo1 train --recipe recipes/metaworld.yaml --stage 1 --set stage1.steps=20000

      evo1 train --recipe recipes/metaworld.yaml --resume

      accelerate launch --num_processes 8 -m evo1cli train --recipe recipes/libero.yaml
    """
    from evo1cli.train.recipe import load_recipe

    if stage not in STAGE_CHOICES:
        raise Evo1Error(f"must be 1, 2 or all, got {stage!r}", field="--stage")
    if out is not None:
        overrides = [*overrides, f"output={out}"]
    parsed = load_recipe(recipe, overrides)
    from evo1cli.train.trainer import check_datasets
    from evo1cli.train.trainer import train as run

    if check:
        check_datasets(parsed)
        console.print(f"{recipe}: valid ({len(parsed.data.groups)} dataset(s), output {parsed.output})")
        return
    if init is not None:
        from evo1cli.commands.checkpoints import checkpoint_dir

        init = checkpoint_dir(init)
    with training_display(quiet=as_json) as listener:
        try:
            results = run(parsed, STAGE_CHOICES[stage], resume=resume, init=init, listener=listener)
        except KeyboardInterrupt:
            console.print("stopped at once (second Ctrl-C); resume from the last checkpoint with --resume")
            raise typer.Exit(130) from None
    if as_json:
        from evo1cli.train.trainer import trainer_summary

        print_json([trainer_summary(r) for r in results])
    if any(r.interrupted for r in results):
        raise typer.Exit(130)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


@contextlib.contextmanager
def training_display(quiet: bool = False) -> Iterator[Display]:
    """One live Rich display for trainer events (and any other phase of a longer job)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield Display(bar, Console(stderr=True, highlight=False, soft_wrap=True) if quiet else console)


class Display:
    """A banner per stage, a live bar with the metrics, a line per checkpoint; `phase` bars for other work."""

    def __init__(self, bar: Progress, out: Console):
        self.bar, self.out = bar, out
        self.tasks: dict[Any, Any] = {}

    def phase(self, name: str, done: int, total: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total, metrics="")
        self.bar.update(self.tasks[name], completed=done, total=total)
        if done >= total:
            self.bar.remove_task(self.tasks.pop(name))

    def __call__(self, event: Any) -> None:
        d, out, bar, tasks = event.data, self.out, self.bar, self.tasks
        if event.kind == "start":
            frozen = " (backbone frozen)" if event.stage == 1 else ""
            resumed = f", resuming {d['resumed_from']}" if d["resumed_from"] else ""
            out.print(
                f"stage {event.stage}: {_count(d['trainable'])} of {_count(d['parameters'])} parameters "
                f"train{frozen}; {d['windows']} windows from {', '.join(d['datasets'])}; "
                f"effective batch {d['effective_batch']} = {d['batch_size']} per process x {d['processes']} "
                f"process(es) x {d['grad_accumulation']} accumulation; {d['device']} {d['precision']}; "
                f"-> {d['out']}{resumed}"
            )
            tasks[event.stage] = bar.add_task(
                f"stage {event.stage}", total=d["steps"], completed=d["start_step"], metrics=""
            )
        elif event.kind == "log":
            metrics = (
                f"loss {d['loss']:.4f}  lr {d['lr']:.2e}  grad {d['grad_norm']:.3f}  {d['samples_per_s']:.0f} samples/s"
            )
            bar.update(tasks[event.stage], completed=d["step"], metrics=metrics)
        elif event.kind == "checkpoint":
            out.print(f"stage {event.stage}: step {d['step']}: checkpoint {d['path']}")
        elif event.kind == "skip":
            out.print(
                f"stage {event.stage}: step {d['step']} skipped: loss {d['loss']}, gradient norm "
                f"{d['grad_norm']} ({d['streak']} in a row)"
            )
        elif event.kind == "warning":
            out.print(f"warning: {d['message']}")
        elif event.kind == "done":
            if event.stage in tasks:
                bar.remove_task(tasks.pop(event.stage))
            if d.get("interrupted"):
                out.print(f"stage {event.stage}: interrupted at step {d['steps']}; --resume continues it")
            else:
                out.print(f"stage {event.stage}: done, {d['steps']} steps; final checkpoint {d['checkpoint']}")
