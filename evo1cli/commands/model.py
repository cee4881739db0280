"""`evo1 model ...`: create, inspect and query policy checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from evo1cli.commands.checkpoints import (
    CHECKPOINT_HELP,
    checkpoint_dir,
    dataset_key_option,
    device_option,
    dtype_option,
    embodiment_option,
    storage_dtype,
)
from evo1cli.commands.output import console, err_console, print_json
from evo1cli.errors import Evo1Error
from evo1cli.interop import MAX_ABS

if TYPE_CHECKING:  # torch and the model core load inside the commands, so that --help is instant
    import numpy as np
    import torch

app = typer.Typer(help="Create, inspect and query policy checkpoints.", no_args_is_help=True)


@app.command("init")
def init(
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write."),
    preset: str = typer.Option("tiny", help="Model preset: tiny or internvl3-1b."),
    random: bool = typer.Option(False, "--random", help="Random backbone weights (no download)."),
    backbone_path: str | None = typer.Option(None, help="Hub id or local directory of InternVL3 weights."),
    stats: Path | None = typer.Option(None, help="norm_stats.json to carry; default: identity stats."),
    state_dim: int | None = typer.Option(None, help="Native state dims of the identity stats [the model's width]."),
    action_dim: int | None = typer.Option(None, help="Native action dims of the identity stats [the model's width]."),
    seed: int = typer.Option(0, help="Seed of the random initialisation."),
    dtype: str = typer.Option("float32", help="float32 or bfloat16."),
) -> None:
    """Write a new, untrained policy checkpoint.

    Examples:  evo1 model init --preset tiny --out runs/tiny
               evo1 model init --preset internvl3-1b --random --dtype bfloat16 --out runs/full-random
    """
    from evo1cli.model.checkpoint import save_policy
    from evo1cli.model.config import Evo1Config
    from evo1cli.model.normalization import NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model

    overrides: dict = {"seed": seed}
    if random:
        overrides["backbone_init"] = "random"
    if backbone_path:
        overrides.update(backbone_path=backbone_path, backbone_init="pretrained")
    config = Evo1Config.preset(preset, **overrides)
    if stats is not None:
        table = StatsTable.load(stats)
    else:
        table = StatsTable()
        dims = (state_dim or config.state_dim, action_dim or config.action_dim)
        table.add("default", "default", NormStats.identity(*dims))
    policy = Evo1Model.build(config, storage_dtype(dtype), table)
    save_policy(policy, out)
    console.print(f"wrote {out} ({_count(policy):,} parameters, preset {preset})")


def _count(module: torch.nn.Module) -> int:  # parameters
    return sum(p.numel() for p in module.parameters())


@app.command("inspect")
def inspect(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Show a checkpoint's config, parameter counts and normalisation stats keys.

    Example:  evo1 model inspect runs/tiny --json
    """
    from evo1cli.model.checkpoint import load_policy

    policy = load_policy(checkpoint_dir(checkpoint))
    backbone = policy.backbone.model
    data = {
        "checkpoint": str(checkpoint),
        "config": policy.config.to_dict(),
        "parameters": {
            "vision": _count(backbone.vision_tower) + _count(backbone.multi_modal_projector),
            "llm": _count(backbone.language_model),
            "action_head": _count(policy.action_head),
            "total": _count(policy),
        },
        "dtype": str(policy.action_head.dtype).replace("torch.", ""),
        "stats": [
            {"embodiment": e, "dataset": d, "state_dim": s.state.dim, "action_dim": s.action.dim}
            for (e, d), s in policy.stats.entries.items()
        ],
    }
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{checkpoint}[/]  {data['dtype']}")
    for part, n in data["parameters"].items():
        console.print(f"  {part:<12} {n:>14,} parameters")
    cfg = policy.config
    console.print(
        f"  backbone {cfg.backbone} ({cfg.llm_layers} LLM layers, {cfg.image_size} px, {cfg.num_views} views); "
        f"head E={cfg.embed_dim} x {cfg.num_layers} blocks, H={cfg.horizon}, D={cfg.action_dim}; "
        f"{cfg.num_inference_steps} Euler steps; normalisation {cfg.normalization}"
    )
    for s in data["stats"]:
        console.print(
            f"  stats {s['embodiment']}/{s['dataset']}: state {s['state_dim']} dims, action {s['action_dim']} dims"
        )


def _read_image(path: str, index: int) -> np.ndarray | None:
    if path.lower() == "none":
        return None
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise Evo1Error("file not found", path=path, field=f"--image #{index + 1}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise Evo1Error(f"not a readable image ({err})", path=path, field=f"--image #{index + 1}") from None


def _parse_state(text: str) -> np.ndarray:
    import numpy as np

    try:
        return np.array([float(v) for v in text.split(",") if v.strip()], dtype=np.float64)
    except ValueError:
        raise Evo1Error(f"expected comma-separated numbers, got {text!r}", field="--state") from None


@app.command("predict")
def predict(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP),
    image: list[str] = typer.Option(
        [], "--image", help="RGB image per view slot, in order; 'none' for an absent view."
    ),
    prompt: str = typer.Option(..., help="The instruction."),
    state: str = typer.Option(..., help="Native state, comma-separated."),
    embodiment: str | None = embodiment_option(),
    dataset_key: str | None = dataset_key_option(None, "--dataset"),
    steps: int | None = typer.Option(None, help="Euler steps (default: the checkpoint's)."),
    seed: int = typer.Option(0, help="Seed of the initial noise."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Predict one action chunk from images, a prompt and a state.

    Example:  evo1 model predict runs/tiny --image cam.png --prompt "Reach a goal position" --state 0,0,0,0,0,0,0,0
    """
    from evo1cli.client.chunks import Query
    from evo1cli.runtime.policy import open_checkpoint

    if steps is not None and steps < 1:
        raise Evo1Error(f"must be >= 1, got {steps}", field="--steps")
    images = [_read_image(p, i) for i, p in enumerate(image)]
    query = Query(images, _parse_state(state), prompt, embodiment, dataset_key, seed=seed)
    banner: list[str] = []  # said once the chunk exists: a failure stays the one line naming the field
    policy = open_checkpoint(checkpoint, device=device, dtype=dtype, notify=banner.append)
    assert policy.placement is not None
    placement, policy.num_steps = policy.placement, steps
    chunk = policy.infer([query])[0]
    for line in banner:
        err_console.print(line, markup=False)
    if as_json:
        print_json({"actions": chunk.tolist(), "horizon": chunk.shape[0], "action_dim": chunk.shape[1],
                    "device": placement.device, "dtype": placement.dtype, "placement": placement.reason})  # fmt: skip
        return
    table = Table(title=f"action chunk ({chunk.shape[0]} x {chunk.shape[1]})")
    table.add_column("step", justify="right")
    for d in range(chunk.shape[1]):
        table.add_column(f"a{d}", justify="right")
    for t, row in enumerate(chunk):
        table.add_row(str(t), *(f"{v:+.4f}" for v in row))
    console.print(table)


@app.command("verify")
def verify(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP),
    max_abs: float = typer.Option(MAX_ABS, "--max-abs", help="Largest |weight| accepted as sane."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Check a checkpoint: tensor names, shapes and dtypes against its config, NaN/inf, magnitudes, stats,
    and one forward pass. Exit code 1 on any problem.

    Example:  evo1 model verify runs/metaworld/stage2/checkpoints/last --json
    """
    from evo1cli.interop.verify import verify_checkpoint

    report = verify_checkpoint(checkpoint_dir(checkpoint), max_abs=max_abs)
    if as_json:
        print_json(report.to_dict())
    else:
        table = Table(title=str(checkpoint))
        for column in ("check", "", "detail"):
            table.add_column(column)
        for check in report.checks:
            table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)
