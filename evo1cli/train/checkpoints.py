"""Training checkpoints: a usable policy plus everything needed to continue exactly.

    <stage dir>/checkpoints/000500/               one directory per saved step, written atomically
        config.json, model.safetensors,           a policy checkpoint (`evo1cli.model.checkpoint`):
        norm_stats.json, backbone/                `bench` and `serve` load it as it is
        training_state/trainer.json               step, stage, batch topology, non-finite streak
        training_state/state.pt                   optimizer and scheduler state, RNG states
    <stage dir>/checkpoints/last -> 000500        a relative symlink, replaced atomically

The step directory is renamed into place before `last` moves, so a kill at any moment leaves `last`
pointing to a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory, read_json
from evo1cli.model.checkpoint import write_policy
from evo1cli.model.policy import Evo1Model

CHECKPOINTS = "checkpoints"
LAST = "last"
STATE_DIR = "training_state"
TRAINER_FILE = "trainer.json"
STATE_FILE = "state.pt"


@dataclass
class TrainerState:
    stage: int
    step: int  # optimizer steps done (= batches consumed, skipped ones included)
    steps: int  # the stage's total
    seed: int
    world_size: int
    batch_size: int  # per process
    grad_accumulation: int
    nonfinite_streak: int = 0
    skipped: int = 0  # steps skipped for non-finite loss or gradients so far


def checkpoint_dir(stage_dir: Path, step: int) -> Path:
    return stage_dir / CHECKPOINTS / f"{step:06d}"


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _numpy_state() -> tuple[str, torch.Tensor, int, int, float]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    stage_dir: Path,
    policy: Evo1Model,
    trainer: TrainerState,
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    keep: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write step `trainer.step`'s checkpoint (and `extra`: file name -> JSON value beside the weights), point
    `last` at it, drop the oldest beyond `keep`."""
    target = checkpoint_dir(stage_dir, trainer.step)
    with atomic_directory(target) as staging:
        write_policy(policy, staging)
        for name, value in (extra or {}).items():
            (staging / name).write_text(json.dumps(value) + "\n")
        (staging / STATE_DIR).mkdir()
        (staging / STATE_DIR / TRAINER_FILE).write_text(json.dumps(asdict(trainer), indent=2) + "\n")
        torch.save(
            {"optimizer": optimizer_state, "scheduler": scheduler_state, "rng": rng_states()},
            staging / STATE_DIR / STATE_FILE,
        )
    _point_last(stage_dir / CHECKPOINTS, target.name)
    if keep is not None:
        for old in step_checkpoints(stage_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _point_last(root: Path, name: str) -> None:
    tmp = root / f".{LAST}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(name, tmp)
    os.replace(tmp, root / LAST)


def step_checkpoints(stage_dir: Path) -> list[Path]:
    """Complete step checkpoints, oldest first (staging leftovers are hidden and ignored)."""
    root = stage_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.isdigit() and p.is_dir() and not p.is_symlink())


def last_checkpoint(stage_dir: Path) -> Path | None:
    link = stage_dir / CHECKPOINTS / LAST
    if link.is_dir():
        return link.resolve()
    found = step_checkpoints(stage_dir)  # `last` lost (copied without symlinks): the newest step
    return found[-1] if found else None


def load_trainer_state(checkpoint: Path) -> TrainerState:
    path = checkpoint / STATE_DIR / TRAINER_FILE
    data = read_json(path)
    try:
        return TrainerState(**data)
    except TypeError as err:
        raise Evo1Error(f"not a trainer state ({err})", path=path) from None


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    """Optimizer, scheduler and RNG states (tensors and plain containers only: `weights_only`)."""
    path = checkpoint / STATE_DIR / STATE_FILE
    if not path.is_file():
        raise Evo1Error("file not found (a policy checkpoint without training state cannot be resumed)", path=path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise Evo1Error(f"truncated or corrupt training state ({type(err).__name__})", path=path) from None
