"""`evo1 serve`: a websocket policy server for remote inference."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.client import wire
from evo1cli.commands.checkpoints import CHECKPOINT_HELP, device_option, dtype_option
from evo1cli.commands.output import console


def serve(
    checkpoint: Path = typer.Option(..., "--checkpoint", help=CHECKPOINT_HELP),
    host: str = typer.Option(wire.DEFAULT_HOST, "--host", help="Interface to bind (0.0.0.0: the network)."),
    port: int = typer.Option(wire.DEFAULT_PORT, "--port", help="TCP port (0 picks a free one)."),
    token: str | None = typer.Option(None, "--token", help="Require this token (Authorization: Bearer or ?token=)."),
    max_message_mb: float = typer.Option(32.0, "--max-message-mb", help="Largest request accepted, in MB."),
    max_batch: int = typer.Option(16, "--max-batch", help="Requests that arrive together share a forward pass."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", help="How long to wait for a batch to fill."),
    seed: int | None = typer.Option(None, "--seed", help="Fixed initial noise: identical requests, identical replies."),
    ping_interval: float | None = typer.Option(
        None, "--ping-interval", help="Keep-alive pings every this many seconds (default: off, for long inferences)."
    ),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Serve a checkpoint over websockets (msgpack, or the authors' JSON protocol) with a /healthz endpoint.

    Examples:

      evo1 serve --checkpoint runs/smoke

      evo1 serve --checkpoint runs/metaworld --host 0.0.0.0 --port 9000 --token s3cret

      evo1 serve --checkpoint runs/metaworld --device cuda:1 --dtype bfloat16
    """
    from evo1cli.errors import Evo1Error
    from evo1cli.runtime.policy import open_checkpoint
    from evo1cli.serving.server import ServeOptions, run_server

    if min(max_message_mb, max_batch, ping_interval or 1) <= 0 or max_batch < 1 or batch_window_ms < 0:
        raise Evo1Error("--max-message-mb, --max-batch and --ping-interval must be positive", field="options")
    policy = open_checkpoint(checkpoint, device=device, dtype=dtype)
    options = ServeOptions(
        host=host,
        port=port,
        token=token,
        max_message_bytes=int(max_message_mb * 2**20),
        max_batch=max_batch,
        batch_window_s=batch_window_ms / 1000,
        seed=seed,
        ping_interval_s=ping_interval,
    )

    def ready(bound: int) -> None:
        keys = ", ".join(f"{e}/{d}" for e, d in policy.model.stats.entries) or "none"
        console.print(
            f"serving {checkpoint} on ws://{host}:{bound} (health: http://{host}:{bound}/healthz; stats keys: {keys})"
        )

    run_server(policy, options, ready)
