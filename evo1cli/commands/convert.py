"""`evo1 import` and `evo1 export`: checkpoints from and to the authors' release format and LeRobot."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.checkpoints import checkpoint_dir, storage_dtype
from evo1cli.commands.output import console, print_json


def import_(
    source: str = typer.Argument(..., help="Authors' release or LeRobot pretrained_model/ directory, or a hub id."),
    out: Path = typer.Option(..., "--out", help="evo1 checkpoint directory to write."),
    backbone: str | None = typer.Option(
        None,
        "--backbone",
        help="Hub id or directory of the backbone's architecture and tokenizer (default: OpenGVLab/InternVL3-1B-hf, "
        "or the VLM folder a LeRobot checkpoint names). The weights always come from the checkpoint.",
    ),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16 (bf16 releases convert exactly)."),
    force: bool = typer.Option(False, "--force", help="Write it even if it fails verification (marked unverified)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Import an Evo-1 checkpoint from the authors' release or LeRobot, and verify it.

    Examples:

      evo1 import MINT-SJTU/Evo1_MetaWorld --out ckpt/metaworld

      evo1 import runs/evo1_metaworld_stage2/step_80000 --out ckpt/mine --backbone ~/models/InternVL3-1B-hf

      evo1 import outputs/train/evo1/checkpoints/last/pretrained_model --out ckpt/from-lerobot
    """
    from evo1cli.interop.convert import import_checkpoint
    from evo1cli.interop.resolve import locate

    directory, name = locate(source)
    result = import_checkpoint(directory, out, backbone=backbone, dtype=storage_dtype(dtype), force=force, origin=name)
    if as_json:
        print_json(
            {"out": str(out), "source": name, "layout": result.format, "backbone": result.backbone,
             "notes": result.notes, "verify": result.report.to_dict()}
        )  # fmt: skip
        return
    console.print(f"wrote {out} from {name} ({result.format}; backbone architecture from {result.backbone})")
    for note in result.notes:
        console.print(f"  {note}")
    if result.report.ok:
        console.print(f"  verified: {len(result.report.checks)} checks passed")
    for problem in result.report.problems:
        console.print(f"  [red]UNVERIFIED[/] {problem}")


def export(
    checkpoint: str = typer.Argument(..., help="evo1 checkpoint (or anything `evo1 import` reads)."),
    to: str = typer.Option(..., "--to", help="lerobot or authors."),
    out: Path = typer.Option(..., "--out", help="Directory to write."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32 or bfloat16 (default: as stored)."),
    cameras: str | None = typer.Option(
        None, "--cameras", help="lerobot: camera names in view-slot order, comma-separated (e.g. front,wrist)."
    ),
    vlm_name: str | None = typer.Option(
        None, "--vlm-name", help="lerobot: the vlm_model_name to write instead of a vlm/ folder (e.g. a hub id)."
    ),
    embodiment: str | None = typer.Option(None, "--embodiment", help="lerobot: stats key (default: the only one)."),
    dataset: str | None = typer.Option(None, "--dataset-key", help="lerobot: stats key: dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Export a checkpoint to LeRobot's pretrained_model/ format or the authors' release format.

    What the target cannot express of the checkpoint is printed, one line each.

    Examples:

      evo1 export runs/so100/stage2/checkpoints/last --to lerobot --out export/so100 --cameras front,wrist

      evo1 export runs/metaworld/stage2/checkpoints/last --to authors --out export/metaworld --dtype bfloat16
    """
    from evo1cli.interop.convert import export_checkpoint

    names = [c.strip() for c in cameras.split(",") if c.strip()] if cameras else None
    warnings = export_checkpoint(
        checkpoint_dir(checkpoint), to, out, dtype=storage_dtype(dtype) if dtype else None, cameras=names,
        vlm_name=vlm_name, embodiment=embodiment, dataset=dataset,
    )  # fmt: skip
    if as_json:
        print_json({"out": str(out), "to": to, "warnings": warnings})
        return
    console.print(f"wrote {out} ({to} format)")
    for warning in warnings:
        console.print(f"  [yellow]warning[/] {warning}")
