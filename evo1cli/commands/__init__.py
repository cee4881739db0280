"""The `evo1` command line: thin Typer commands over the core (parse, call, print)."""

from __future__ import annotations

import sys

import typer

from evo1cli.client.wire import RequestError
from evo1cli.commands import bench, collect, convert, dataset, deploy, info, model, quickstart, serve, smoke, train
from evo1cli.errors import Evo1Error
from evo1cli.robots.base import RobotError

app = typer.Typer(
    name="evo1",
    help=(
        "Evo-1 vision-language-action policies: collect demonstrations, train, export, benchmark, "
        "serve and deploy.\n\n"
        "Examples:\n\n"
        "  evo1 quickstart\n\n"
        "  evo1 info --json\n\n"
        "  evo1 smoke --out runs/smoke\n\n"
        "  evo1 model init --preset tiny --out runs/tiny\n\n"
        "  evo1 import MINT-SJTU/Evo1_MetaWorld --out ckpt/metaworld\n\n"
        "  evo1 collect --robot metaworld --task reach-v3 --episodes 50 --out data/reach\n\n"
        "  evo1 dataset validate data/reach\n\n"
        "  evo1 train --recipe recipes/quickstart.yaml\n\n"
        "  evo1 deploy so100 -c runs/so100/stage2/checkpoints/last --task 'Pick up the cube' --dry-run\n\n"
        "  evo1 model predict runs/tiny --image cam.png --prompt 'Reach a goal position' --state 0,0,0,0,0,0,0,0"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
app.command("info")(info.info)
app.command("quickstart")(quickstart.quickstart)
app.command("smoke")(smoke.smoke)
app.command("collect")(collect.collect)
app.command("train")(train.train)
app.command("serve")(serve.serve)
app.command("deploy")(deploy.deploy)
app.command("calibrate")(deploy.calibrate)
app.command("import")(convert.import_)
app.command("export")(convert.export)
app.add_typer(model.app, name="model")
app.add_typer(dataset.app, name="dataset")
app.add_typer(bench.app, name="bench")


def main() -> None:
    """Console entry point: every user-facing failure (bad input or files, a robot's error, a server that
    refuses or cannot be reached) becomes one line on stderr and exit code 1; an interrupt exits 130."""
    try:
        app()
    except (Evo1Error, RobotError, RequestError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
