"""Import a foreign checkpoint into evo1's format, export an evo1 checkpoint to a foreign one.

An import reads the source through its format's adapter (`formats.py`), builds the policy from the backbone's
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

from evo1cli import __version__
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory, read_json
from evo1cli.interop.foreign import ExportOptions, Foreign
from evo1cli.interop.formats import detect, export_format
from evo1cli.interop.verify import Report, verify_checkpoint
from evo1cli.model.backbone import INTERNVL3_1B_HUB_ID
from evo1cli.model.checkpoint import check_state_dict, load_policy, policy_skeleton, write_policy
from evo1cli.model.policy import Evo1Model

IMPORT_FILE = "import.json"


def build_policy(foreign: Foreign, backbone: str, dtype: torch.dtype, source: Path) -> Evo1Model:
    """The policy of a foreign checkpoint: `backbone`'s architecture and tokenizer, every weight from the source."""
    config = foreign.config.replace(backbone_path=backbone)
    policy = policy_skeleton(config, backbone, foreign.stats)
    check_state_dict(policy, foreign.weights, source, hint=f"the backbone's architecture comes from {backbone}")
    policy.load_state_dict({k: v.to(dtype) for k, v in foreign.weights.items()}, strict=True, assign=True)
    return policy.eval()


@dataclass
class Imported:
    out: Path
    format: str  # the source's, in words
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
    source_format, root = detect(source)
    foreign = source_format.read(root)
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
            "layout": foreign.format,  # the key import.json has always had
            "backbone": arch,
            "dtype": str(dtype).replace("torch.", ""),
            "notes": foreign.notes,
            "verified": report.ok,
            "problems": report.problems,
            "evo1cli": __version__,
            **foreign.extra,
        }
        (staging / IMPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return Imported(out, foreign.format, arch, foreign.notes, report)


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
    """Write `checkpoint` in another tool's format; returns what that tool cannot express, one line each.
    Without `cameras`, the camera names an import recorded are used."""
    target = export_format(to)
    policy = load_policy(checkpoint, dtype=dtype)
    if cameras is None:
        cameras = import_record(checkpoint).get("cameras")
    options = ExportOptions(cameras=cameras, vlm_name=vlm_name, embodiment=embodiment, dataset=dataset)
    warnings = target.cannot_express(policy, options)
    with atomic_directory(out) as staging:
        target.write(policy, options, staging, out)
    return warnings
