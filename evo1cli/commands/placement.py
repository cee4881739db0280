"""`--device` / `--dtype`, shared by serve, bench, deploy and `model predict`, and the start banner."""

from __future__ import annotations

import typer

from evo1cli.commands.output import err_console
from evo1cli.runtime.device import Placement, choose_placement

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (auto: CUDA when present, else MPS, else the CPU)."
DTYPE_HELP = "auto, float32 or bfloat16 (auto: bfloat16 on GPUs and on CPUs with native bf16, else float32)."


def device_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--device", help=DEVICE_HELP)


def dtype_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--dtype", help=DTYPE_HELP)


def choose(device: str, dtype: str) -> Placement:
    """The placement for these options (an impossible one is a one-line error before anything loads)."""
    return choose_placement(device, dtype)


def announce(placement: Placement) -> None:
    """The start banner, once the policy is loaded there: on stderr, so stdout stays clean for --json."""
    err_console.print(placement.banner())
