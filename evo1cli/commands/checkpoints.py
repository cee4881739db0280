"""What every command that takes a checkpoint shares: the argument's help, where it resolves, storage dtypes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evo1cli.commands.output import err_console
from evo1cli.errors import Evo1Error

if TYPE_CHECKING:
    import torch

CHECKPOINT_HELP = "Checkpoint: an evo1, authors' or LeRobot directory, or a hub id."
STORAGE_DTYPES = ("float32", "bfloat16")


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
