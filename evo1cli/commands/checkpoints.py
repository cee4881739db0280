"""What every command that takes a checkpoint or opens a policy shares: the checkpoint argument's help, where it
resolves, storage dtypes, and the options `evo1cli.runtime.policy.open_policy` takes (`--device`, `--dtype`,
the stats keys `--embodiment` / `--dataset-key`), spelled the same in serve, bench, deploy and `model predict`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from evo1cli.commands.output import err_console
from evo1cli.errors import Evo1Error

if TYPE_CHECKING:
    import torch

CHECKPOINT_HELP = "Checkpoint: an evo1, authors' or LeRobot directory, or a hub id."
STORAGE_DTYPES = ("float32", "bfloat16")
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (auto: CUDA when present, else MPS, else the CPU)."
DTYPE_HELP = "auto, float32 or bfloat16 (auto: bfloat16 on GPUs and on CPUs with native bf16, else float32)."


def device_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--device", help=DEVICE_HELP)


def dtype_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--dtype", help=DTYPE_HELP)


def embodiment_option(default: str | None = None) -> typer.models.OptionInfo:
    what = default or "the checkpoint's only one"
    return typer.Option(default, "--embodiment", help=f"Stats key: embodiment (default: {what}).")


def dataset_key_option(default: str | None = None, *aliases: str) -> typer.models.OptionInfo:
    """`--dataset-key` (`aliases`: older spellings a command still accepts)."""
    what = default or "the checkpoint's only one"
    return typer.Option(default, "--dataset-key", *aliases, help=f"Stats key: dataset (default: {what}).")


def checkpoint_dir(checkpoint: str | Path, backbone: str | None = None) -> Path:
    """The evo1 directory of a checkpoint argument: an evo1, authors' or LeRobot directory, or a hub id
    (foreign ones are imported into the user's cache once; the import is reported on stderr)."""
    from evo1cli.interop.resolve import resolve_checkpoint

    return resolve_checkpoint(checkpoint, backbone=backbone, notify=err_console.print)


def storage_dtype(name: str) -> torch.dtype:
    """The dtype a checkpoint is written in (`--dtype` of init, import and export; no `auto` there)."""
    import torch

    if name not in STORAGE_DTYPES:
        raise Evo1Error(f"must be one of {', '.join(STORAGE_DTYPES)}, got {name!r}", field="--dtype")
    return getattr(torch, name)
