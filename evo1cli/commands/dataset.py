"""`evo1 dataset ...`: check, describe, compute stats of, pad and convert LeRobot v2.1 and v3.0 datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from evo1cli.commands.output import console, print_json, progress

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
    as_json: bool = typer.Option(False, "--json", help="Print the stats as JSON too."),
) -> None:
    """Per-dim min, max, mean, std, q01, q99 of state and action over all frames, exactly.

    Streams episode by episode, so datasets larger than memory work. Writes meta/evo1_stats.json;
    LeRobot's meta/stats.json is never touched.

    Example:  evo1 dataset stats data/reach
    """
    from evo1cli.data.format import load_meta
    from evo1cli.data.stats import dataset_stats, write_stats

    meta = load_meta(root)
    with progress("computing stats"):
        result = dataset_stats(meta)
    path = write_stats(meta, result)
    if as_json:
        print_json(result)
        return
    for key in ("observation.state", "action"):
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
    dim: int = typer.Option(24, "--dim", help="Dims to pad state and action to."),
) -> None:
    """Write a copy with state and action zero-padded to --dim, native dims recorded.

    Example:  evo1 dataset pad data/reach --out data/reach-24
    """
    from evo1cli.data.pad import pad_dataset

    with progress("padding episodes") as update:
        pad_dataset(root, out, dim, progress=update)
    console.print(f"wrote {out} (state and action padded to {dim} dims)")


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
