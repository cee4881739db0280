"""Import a foreign checkpoint into evo1's layout, export an evo1 checkpoint to a foreign one.

An import reads the source (`authors.py`, `lerobot.py`), builds the policy from the backbone's
architecture and tokenizer (`--backbone`, or the VLM folder a LeRobot checkpoint names) with every
weight taken from the source, writes it as an evo1 checkpoint plus `import.json` (where it came from,
the conventions chosen, the verification), and refuses to commit one that fails `verify_checkpoint`
unless forced. Both directions write atomically: a failure leaves no half-written directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights

from evo1cli import __version__
from evo1cli.errors import Evo1Error
from evo1cli.features import IMAGE_PREFIX
from evo1cli.fileio import atomic_directory, read_json
from evo1cli.interop import authors, lerobot
from evo1cli.interop.foreign import Foreign
from evo1cli.interop.verify import Report, verify_checkpoint
from evo1cli.model.action_head import ActionHead
from evo1cli.model.backbone import INTERNVL3_1B_HUB_ID, Evo1Backbone
from evo1cli.model.checkpoint import (
    BACKBONE_DIR,
    CONFIG_FILE,
    STATS_FILE,
    WEIGHTS_FILE,
    check_state_dict,
    load_policy,
    write_policy,
)
from evo1cli.model.policy import Evo1Policy

IMPORT_FILE = "import.json"
FORMATS = {"evo1": "evo1", "authors": "the authors' release", "lerobot": "LeRobot"}
TARGETS = ("lerobot", "authors")


def is_evo1_checkpoint(directory: Path) -> bool:
    return (
        all((directory / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, STATS_FILE))
        and (directory / BACKBONE_DIR).is_dir()
    )


def _kind(directory: Path) -> str | None:
    if is_evo1_checkpoint(directory):
        return "evo1"
    if lerobot.is_lerobot_checkpoint(directory):
        return "lerobot"
    if authors.is_authors_checkpoint(directory):
        return "authors"
    return None


def detect(directory: Path) -> tuple[str, Path]:
    """The format of a checkpoint directory ("evo1", "authors" or "lerobot") and the directory holding it:
    the one given, or its only checkpoint subdirectory (a hub repo's `pretrained_model/`, a tag folder)."""
    if not directory.is_dir():
        raise Evo1Error("not a directory", path=directory)
    kind = _kind(directory)
    if kind:
        return kind, directory
    found = [(k, sub) for sub in sorted(directory.iterdir()) if sub.is_dir() and (k := _kind(sub))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise Evo1Error("holds no evo1, authors' or LeRobot Evo-1 checkpoint", path=directory)
    names = ", ".join(sub.name for _, sub in found)
    raise Evo1Error(f"holds several checkpoints ({names}): pass one of them", path=directory)


def read_foreign(directory: Path) -> Foreign:
    kind, root = detect(directory)
    if kind == "evo1":
        raise Evo1Error("is already an evo1 checkpoint: nothing to import", path=root)
    return authors.read_authors(root) if kind == "authors" else lerobot.read_lerobot(root)


def build_policy(foreign: Foreign, backbone: str, dtype: torch.dtype, source: Path) -> Evo1Policy:
    """The policy of a foreign checkpoint: `backbone`'s architecture and tokenizer, every weight from the source."""
    config = foreign.config.replace(backbone_path=backbone)
    with init_empty_weights(include_buffers=False):
        model = Evo1Backbone.from_architecture(backbone, config)
        policy = Evo1Policy(config, model, ActionHead(config), foreign.stats)
    check_state_dict(policy, foreign.weights, source, hint=f"the backbone's architecture comes from {backbone}")
    policy.load_state_dict({k: v.to(dtype) for k, v in foreign.weights.items()}, strict=True, assign=True)
    return policy.eval()


@dataclass
class Imported:
    out: Path
    layout: str
    backbone: str
    notes: list[str]
    report: Report


def import_checkpoint(
    source: Path,
    out: Path,
    *,
    backbone: str | None = None,
    dtype: torch.dtype = torch.float32,
    force: bool = False,
    origin: str | None = None,
) -> Imported:
    """Write the evo1 checkpoint of `source` to `out`; `origin` names the source in import.json (a hub id)."""
    foreign = read_foreign(source)
    arch = backbone or foreign.backbone or INTERNVL3_1B_HUB_ID
    policy = build_policy(foreign, arch, dtype, source)
    with atomic_directory(out) as staging:
        write_policy(policy, staging)
        report = verify_checkpoint(staging, policy=policy)
        report.checkpoint = str(out)
        if not report.ok and not force:
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise Evo1Error(
                f"not written, it fails verification: {report.problems[0]}{more}; --force writes it marked unverified",
                path=source,
            )
        record = {
            "source": origin or str(source),
            "layout": foreign.layout,
            "backbone": arch,
            "dtype": str(dtype).replace("torch.", ""),
            "notes": foreign.notes,
            "verified": report.ok,
            "problems": report.problems,
            "evo1cli": __version__,
            **foreign.extra,
        }
        (staging / IMPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return Imported(out, foreign.layout, arch, foreign.notes, report)


def import_record(checkpoint: Path) -> dict[str, Any]:
    """What `import.json` says about a checkpoint's origin ({} for one trained with evo1)."""
    path = checkpoint / IMPORT_FILE
    data = read_json(path) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


def export_checkpoint(
    checkpoint: Path,
    to: str,
    out: Path,
    *,
    dtype: torch.dtype | None = None,
    cameras: list[str] | None = None,
    vlm_name: str | None = None,
    embodiment: str | None = None,
    dataset: str | None = None,
) -> list[str]:
    """Write `checkpoint` in another tool's layout; returns what that tool cannot express, one line each."""
    if to not in TARGETS:
        raise Evo1Error(f"must be one of {', '.join(TARGETS)}, got {to!r}", field="--to")
    policy = load_policy(checkpoint, dtype=dtype)
    config, state = policy.config, policy.state_dict()
    if to == "authors":
        warnings = authors.limitations(config, policy.stats, policy.backbone.model.config)
        with atomic_directory(out) as staging:
            authors.write_authors(state, config, policy.stats, staging)
        return warnings

    lerobot.check_expressible(config)
    stats = policy.stats.get(embodiment, dataset)
    warnings = lerobot.limitations(config, stats)
    if cameras is None:
        cameras = import_record(checkpoint).get("cameras")
    if not cameras:
        cameras = [f"{IMAGE_PREFIX}view{i + 1}" for i in range(config.num_views)]
        warnings.append(
            f"camera names unknown: wrote {', '.join(cameras)} (LeRobot requires all); --cameras names them"
        )
    cameras = [c if c.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + c for c in cameras]
    if len(cameras) > config.num_views:
        raise Evo1Error(f"{len(cameras)} cameras for {config.num_views} view slots", field="--cameras")
    vlm = vlm_name or str(out.resolve() / "vlm")
    with atomic_directory(out) as staging:
        lerobot.write_lerobot(state, config, stats, cameras, vlm, staging)
        if vlm_name is None:  # LeRobot loads a whole VLM (weights too) before model.safetensors overwrites it
            backbone = policy.backbone
            backbone.model.config.image_seq_length = backbone.tokens_per_image
            backbone.save_pretrained(staging / "vlm", weights=True)
    return warnings
