from __future__ import annotations

import typer
from rich.table import Table

from evo1cli.commands.output import console, print_json
from evo1cli.sysinfo import system_info


def info(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines.")) -> None:
    """Versions, device, attention backends, threads and rendering setup (paste it into bug reports).

    Examples:  evo1 info    |    evo1 info --json > info.json
    """
    data = system_info()
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("python", data["python"])
    table.add_row("platform", data["platform"])
    for name, version in data["packages"].items():
        table.add_row(name, version or "[dim]not installed[/]")
    device = data["device"]
    table.add_row("device", f"{device['type']} ({device['name']})")
    table.add_row("auto picks", data["auto_placement"])
    cpu = data["cpu"]
    table.add_row(
        "cpu", f"{cpu['cores']} cores, torch threads {cpu['torch_threads']}, avx512_bf16 {cpu['avx512_bf16']}"
    )
    backends = ", ".join(name for name, ok in data["attention_backends"].items() if ok)
    table.add_row("attention", backends)
    for key, value in data["env"].items():
        table.add_row(key, value or "[dim]unset[/]")
    console.print(table)
