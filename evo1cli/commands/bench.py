"""`evo1 bench ...`: simulation benchmarks (RoboTwin: the plug-in for a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console
from evo1cli.errors import Evo1Error

app = typer.Typer(help="Benchmark policies in simulation.", no_args_is_help=True)


@app.command("robotwin")
def robotwin(
    export_plugin: Path | None = typer.Option(None, "--export-plugin", help="Write the RoboTwin policy folder here."),
    server_url: str = typer.Option("ws://127.0.0.1:9000", "--server-url", help="Where `evo1 serve` listens."),
    token: str | None = typer.Option(None, "--token", help="The server's token, if it has one."),
    embodiment: str = typer.Option("aloha_joint", "--embodiment", help="Stats key: embodiment."),
    dataset_key: str = typer.Option("robotwin_{task_name}", "--dataset-key", help="Stats key per task."),
    execute: int = typer.Option(37, "--execute", help="Actions executed per chunk."),
) -> None:
    """RoboTwin 2.0 needs SAPIEN with a GPU renderer: export the plug-in that drives `evo1 serve` from it.

    Example:

      evo1 bench robotwin --export-plugin RoboTwin/policy/evo1 --server-url ws://gpu-box:9000
    """
    if export_plugin is None:
        raise Evo1Error(
            "RoboTwin runs only where SAPIEN has a GPU renderer; use --export-plugin DIR and run it there",
            field="--export-plugin",
        )
    from evo1cli.serving.robotwin import export_plugin as export

    export(export_plugin, server_url, token, embodiment, dataset_key, execute)
    console.print(f"wrote {export_plugin}: copy it to RoboTwin/policy/evo1 and see its README.md")
