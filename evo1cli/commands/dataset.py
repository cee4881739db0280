"""`evo1 dataset ...`: check, describe, compute stats of, pad and convert LeRobot v2.1 and v3.0 datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from evo1cli.commands.output import console, print_json, progress
from evo1cli.errors import Evo1Error

app = typer.Typer(
    help="Check, describe, compute stats of, pad and convert LeRobot v2.1 and v3.0 datasets.", no_args_is_help=True
)


@app.command("validate")
def validate(
    root: Path = typer.Argument(..., help="Dataset directory."),
    decode: bool = typer.Option(False, "--decode", help="Decode every video frame (slower, thorough)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Check a dataset: structure, schema, episode tables, videos. Exit 0 only when valid.

    Prints every problem with its file and field; warnings (leftovers of an interrupted write) do not
    fail validation. Never modifies anything.

    Examples:

      evo1 dataset validate data/reach

      evo1 dataset validate data/reach --decode --json
    """
    from evo1cli.data.validate import validate as run

    with progress("validating episodes") as update:
        meta, problems = run(root, decode=decode, progress=update)
    ok = not problems.errors
    if as_json:
        print_json(
            {
                "valid": ok,
                "episodes": len(meta.episodes) if meta else None,
                "frames": meta.total_frames if meta else None,
                "problems": [
                    {
                        "severity": "warning" if p.warning else "error",
                        "file": p.path,
                        "field": p.field,
                        "message": p.message,
                    }
                    for p in problems.items
                ],
            }
        )
    else:
        for problem in problems.items:
            console.print(str(problem), markup=False)
        if ok and meta is not None:
            console.print(f"valid: {len(meta.episodes)} episodes, {meta.total_frames} frames ({root})")
        else:
            console.print(f"invalid: {len(problems.errors)} problem(s) in {root}")
    raise typer.Exit(0 if ok else 1)


@app.command("info")
def info(
    root: Path = typer.Argument(..., help="Dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Episodes, frames, fps, duration, features, cameras and tasks of a dataset.

    Example:  evo1 dataset info data/reach --json
    """
    from evo1cli.data.format import load_meta

    meta = load_meta(root)
    summary = {
        "path": str(root),
        "codebase_version": meta.info["codebase_version"],
        "robot_type": meta.info.get("robot_type"),
        "episodes": len(meta.episodes),
        "frames": meta.total_frames,
        "fps": meta.fps,
        "duration_s": round(meta.total_frames / meta.fps, 3),
        "features": {k: {"dtype": ft["dtype"], "shape": list(ft["shape"])} for k, ft in meta.features.items()},
        "cameras": meta.video_keys,
        "tasks": [meta.tasks[i] for i in sorted(meta.tasks)],
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{root}: LeRobot {summary['codebase_version']}, robot {summary['robot_type']}, "
        f"{summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']} fps "
        f"({summary['duration_s']:.1f} s)"
    )
    table = Table("feature", "dtype", "shape")
    for name, ft in summary["features"].items():
        table.add_row(name, ft["dtype"], str(ft["shape"]))
    console.print(table)
    console.print(f"cameras: {', '.join(meta.video_keys) or 'none'}")
    console.print(f"tasks ({len(summary['tasks'])}):")
    for task in summary["tasks"]:
        console.print(f"  {task}", markup=False)


@app.command("stats")
def stats(
    root: Path = typer.Argument(..., help="Dataset directory."),
    relative_horizon: int | None = typer.Option(
        None, "--relative-horizon", help="Action stats of relative targets a[t+k] - s[t], k < H (relative_actions)."
    ),
    relative_dims: int = typer.Option(
        0, "--relative-dims", help="With --relative-horizon: only the first R action dims are offsets (relative_dims)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the stats as JSON too."),
) -> None:
    """Per-dim min, max, mean, std, q01, q99 of state and action over all frames, exactly.

    Streams episode by episode, so datasets larger than memory work. Writes meta/evo1_stats.json;
    LeRobot's meta/stats.json is never touched. A model trained with relative_actions normalises
    its targets, a[t+k] - s[t] for k < horizon, with their own stats: --relative-horizon H computes
    those, offsets in the first --relative-dims action dims (0: all; a gripper after them stays
    absolute); training computes them itself when the file holds others.

    Examples:

      evo1 dataset stats data/reach

      evo1 dataset stats data/cube --relative-horizon 50

      evo1 dataset stats data/xarm6-twin --relative-horizon 16 --relative-dims 6
    """
    from evo1cli.data.format import load_meta
    from evo1cli.data.stats import dataset_stats, write_stats
    from evo1cli.features import ACTION, STATE

    if relative_horizon is not None and relative_horizon < 1:
        raise Evo1Error(f"must be >= 1, got {relative_horizon}", field="--relative-horizon")
    if relative_dims < 0:
        raise Evo1Error(f"must be >= 0, got {relative_dims}", field="--relative-dims")
    meta = load_meta(root)
    with progress("computing stats"):
        result = dataset_stats(meta, relative_horizon=relative_horizon, relative_dims=relative_dims)
    path = write_stats(meta, result)
    if as_json:
        print_json(result)
        return
    for key in (STATE, ACTION):
        table = Table("dim", "min", "max", "mean", "std", "q01", "q99", title=key)
        feature = result[key]
        for d in range(len(feature["min"])):
            table.add_row(str(d), *(f"{feature[m][d]:.4g}" for m in ("min", "max", "mean", "std", "q01", "q99")))
        console.print(table)
    console.print(f"wrote {path} ({result['evo1']['total_frames']} frames)")


@app.command("pad")
def pad(
    root: Path = typer.Argument(..., help="Dataset directory."),
    out: Path = typer.Option(..., "--out", help="Directory of the padded copy (must not exist)."),
    dim: int | None = typer.Option(None, "--dim", help="Dims to pad both state and action to."),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="Pad to this recipe's model widths (model.state_dim, model.action_dim)."
    ),
) -> None:
    """Write a copy with state and action zero-padded, native dims recorded.

    The widths are the model config's state_dim and action_dim: 24 each by default, a recipe's with
    --recipe, or --dim for both. Training pads to the model's widths by itself; a padded copy is for
    tools that want fixed-width vectors.

    Examples:

      evo1 dataset pad data/reach --out data/reach-24

      evo1 dataset pad data/reach --out data/reach-8 --recipe recipes/my-arm.yaml
    """
    from evo1cli.data.pad import pad_dataset
    from evo1cli.model.config import MAX_DIM, Evo1Config

    if dim is not None and recipe is not None:
        raise Evo1Error("give --dim or --recipe, not both", field="--dim")
    if dim is not None and not 0 < dim <= MAX_DIM:
        raise Evo1Error(f"must be between 1 and {MAX_DIM}, got {dim}", field="--dim")
    if recipe is not None:
        from evo1cli.train.recipe import load_recipe

        model = load_recipe(recipe, check_paths=False).model
        widths = (model.state_dim, model.action_dim)
    else:
        widths = (dim, dim) if dim is not None else (Evo1Config().state_dim, Evo1Config().action_dim)
    with progress("padding episodes") as update:
        pad_dataset(root, out, state_dim=widths[0], action_dim=widths[1], progress=update)
    console.print(f"wrote {out} (state padded to {widths[0]} dims, action to {widths[1]})")


@app.command("convert")
def convert(
    root: Path = typer.Argument(..., help="Dataset directory (LeRobot v2.1 or v3.0)."),
    to: str = typer.Option(..., "--to", help="Layout to write: v2.1 (LeRobot 0.3.x, Evo-1) or v3.0 (LeRobot >= 0.4)."),
    out: Path = typer.Option(..., "--out", help="Directory of the converted copy (must not exist)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary for machines."),
) -> None:
    """Write a copy of a dataset in the other LeRobot layout; the source is never modified.

    Every value is copied exactly and videos are remuxed, never re-encoded (decoded frames stay identical).
    Episode metadata (evo1's seed, variation, success, ...) and per-episode stats carry over both ways.
    The copy appears whole or not at all.

    Examples:

      evo1 dataset convert data/reach --to v3.0 --out data/reach-v30

      evo1 dataset convert ~/.cache/huggingface/lerobot/user/pick --to v2.1 --out data/pick
    """
    from evo1cli.data.convert import convert_dataset

    with progress(f"converting to {to}") as update:
        meta = convert_dataset(root, out, to, progress=update)
    if as_json:
        print_json(
            {"out": str(out), "codebase_version": to, "episodes": len(meta.episodes), "frames": meta.total_frames}
        )
        return
    console.print(f"wrote {out}: LeRobot {to}, {len(meta.episodes)} episodes, {meta.total_frames} frames")
