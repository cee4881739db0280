"""`evo1 serve`: a websocket policy server for remote inference."""

from __future__ import annotations

from pathlib import Path

import typer

from evo1cli.commands.output import console


def serve(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint directory to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(9000, "--port", help="TCP port (0 picks a free one)."),
    token: str | None = typer.Option(None, "--token", help="Require this token (Authorization: Bearer or ?token=)."),
    max_message_mb: float = typer.Option(32.0, "--max-message-mb", help="Largest request accepted, in MB."),
    max_batch: int = typer.Option(16, "--max-batch", help="Requests that arrive together share a forward pass."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", help="How long to wait for a batch to fill."),
    seed: int | None = typer.Option(None, "--seed", help="Fixed initial noise: identical requests, identical replies."),
) -> None:
    """Serve a checkpoint over websockets (msgpack, or the authors' JSON protocol) with a /healthz endpoint.

    Examples:

      evo1 serve --checkpoint runs/smoke

      evo1 serve --checkpoint runs/metaworld --host 0.0.0.0 --port 9000 --token s3cret
    """
    from evo1cli.commands.convert import checkpoint_dir
    from evo1cli.errors import Evo1Error
    from evo1cli.model.checkpoint import load_policy
    from evo1cli.serving.server import ServeOptions, run_server

    if max_message_mb <= 0 or max_batch < 1 or batch_window_ms < 0:
        raise Evo1Error("--max-message-mb and --max-batch must be positive", field="options")
    policy = load_policy(checkpoint_dir(checkpoint))
    options = ServeOptions(
        host=host,
        port=port,
        token=token,
        max_message_bytes=int(max_message_mb * 2**20),
        max_batch=max_batch,
        batch_window_s=batch_window_ms / 1000,
        seed=seed,
    )

    def ready(bound: int) -> None:
        keys = ", ".join(f"{e}/{d}" for e, d in policy.stats.entries) or "none"
        console.print(
            f"serving {checkpoint} on ws://{host}:{bound} (health: http://{host}:{bound}/healthz; stats keys: {keys})"
        )

    run_server(policy, options, ready)
