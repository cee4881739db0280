"""`evo1 smoke`: a check of the model core on this machine, offline (fit, save, reload, predict)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from evo1cli.commands.output import console, print_json
from evo1cli.errors import Evo1Error


def smoke(
    out: Path = typer.Option(Path("runs/smoke"), "--out", help="Where to write the fitted checkpoint."),
    preset: str = typer.Option("tiny", help="Model preset (tiny trains on a CPU in a few minutes)."),
    steps: int = typer.Option(600, help="Optimiser steps on the fixed batch."),
    lr: float = typer.Option(3e-4, help="AdamW learning rate."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Check the model core end to end on this machine, offline.

    Builds the tiny policy (with an 8-step chunk), fits its action head to a fixed synthetic batch,
    samples chunks from noise, saves a checkpoint, loads it back and checks that the reloaded
    policy's actions are bit-identical.

    Example:  evo1 smoke --out runs/smoke --steps 600
    """
    from evo1cli.smoke import smoke as run_smoke

    if steps < 1:
        raise Evo1Error(f"must be >= 1, got {steps}", field="--steps")
    with Progress(
        TextColumn("fitting"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(), console=console, disable=as_json, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("fit", total=steps, loss="-")
        report = run_smoke(
            out, preset, steps, lr, on_step=lambda step, loss: progress.update(task, advance=1, loss=f"{loss:.4f}")
        )
    first, last = sum(report.losses[:10]) / 10, sum(report.losses[-10:]) / 10
    data = {
        "preset": preset,
        "parameters": report.parameters,
        "steps": steps,
        "loss_first10": first,
        "loss_last10": last,
        "loss_ratio": first / last,
        "sample_error_before": report.error_before,
        "sample_error_after": report.error_after,
        "train_seconds": report.train_seconds,
        "checkpoint": str(report.checkpoint),
        "reload_identical": report.reload_identical,
        "latency_ms": report.latency_ms,
    }
    if as_json:
        print_json(data)
        return
    console.print(f"{preset}: {report.parameters:,} parameters, {steps} steps in {report.train_seconds:.1f} s")
    console.print(f"loss {first:.4f} -> {last:.4f} ({first / last:.1f}x lower)")
    console.print(f"sampled-chunk error {report.error_before:.3f} -> {report.error_after:.3f}")
    console.print(f"checkpoint {report.checkpoint}; reload bit-identical: {report.reload_identical}")
    console.print(f"one chunk from a raw observation: {report.latency_ms:.0f} ms")
    if not report.reload_identical:
        raise Evo1Error("the reloaded checkpoint gave different actions", path=report.checkpoint)
