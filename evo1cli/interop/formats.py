"""The checkpoint formats, one adapter each, and the one place a directory's format is decided.

    evo1      evo1's own directories (model/checkpoint.py): what imports write; nothing to import or export
    lerobot   LeRobot's pretrained_model/ (lerobot.py)
    authors   the authors' release: DeepSpeed model states or checkpoint.pt (authors.py)

A hub id is not a format but a place: `resolve.locate` downloads it, and the directory it gives is detected
here like any other. A new format is one adapter (`foreign.CheckpointFormat`) added to `FORMATS`.
"""

from __future__ import annotations

from pathlib import Path

from evo1cli.errors import Evo1Error
from evo1cli.interop import authors, lerobot
from evo1cli.interop.foreign import CheckpointFormat, Foreign
from evo1cli.model.checkpoint import BACKBONE_DIR, CONFIG_FILE, STATS_FILE, WEIGHTS_FILE


class Evo1Format(CheckpointFormat):
    name = "evo1"
    title = "evo1"

    def detect(self, directory: Path) -> bool:
        return (
            all((directory / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, STATS_FILE))
            and (directory / BACKBONE_DIR).is_dir()
        )

    def read(self, directory: Path) -> Foreign:
        raise Evo1Error("is already an evo1 checkpoint: nothing to import", path=directory)


EVO1 = Evo1Format()
# In the order they are tried: a LeRobot directory would also pass the authors' looser test.
FORMATS: tuple[CheckpointFormat, ...] = (EVO1, lerobot.FORMAT, authors.FORMAT)


def _detect_here(directory: Path) -> CheckpointFormat | None:
    return next((f for f in FORMATS if f.detect(directory)), None)


def detect(directory: Path) -> tuple[CheckpointFormat, Path]:
    """The format of a checkpoint directory and the directory holding it: the one given, or its only
    checkpoint subdirectory (a hub repo's `pretrained_model/`, a tag folder)."""
    if not directory.is_dir():
        raise Evo1Error("not a directory", path=directory)
    found_here = _detect_here(directory)
    if found_here:
        return found_here, directory
    found = [(f, sub) for sub in sorted(directory.iterdir()) if sub.is_dir() and (f := _detect_here(sub))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise Evo1Error("holds no evo1, authors' or LeRobot Evo-1 checkpoint", path=directory)
    names = ", ".join(sub.name for _, sub in found)
    raise Evo1Error(f"holds several checkpoints ({names}): pass one of them", path=directory)


def export_format(name: str) -> CheckpointFormat:
    """The writable format named `name` (`--to`)."""
    targets = {f.name: f for f in FORMATS if f.writable}
    if name not in targets:
        raise Evo1Error(f"must be one of {', '.join(targets)}, got {name!r}", field="--to")
    return targets[name]
