"""The policy interface's local side, and the one place chunk noise is seeded.

    policy = LocalPolicy.load("runs/x/stage2/checkpoints/last", choose_placement("auto", "auto"))
    chunks = policy.infer([Query([rgb], state, "Pick up the cube", seed=4042, index=0)])

`LocalPolicy` runs a checkpoint on a device in one batched forward pass per `infer`; the remote side,
`evo1cli.client.remote.RemotePolicy`, asks `evo1 serve` (which runs a `LocalPolicy`). `open_policy` is
the one way a command opens its policy (`--checkpoint` / `--server` / `--replay`, `--device`, `--dtype`)
and announces it on stderr; `open_checkpoint`, its checkpoint case, serves the commands that need the
model itself.

Noise: a query with a `seed` starts its chunk from `chunk_noise(seed, index)`, a function of (episode
seed, query index) alone, so a benchmark rerun repeats every chunk and batching queries together does
not change any of them; `evo1 serve --seed`, `evo1 model predict --seed` and `evo1 bench` all use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evo1cli.client.chunks import Policy, Query
from evo1cli.data.views import VIEWS_FILE
from evo1cli.errors import Evo1Error
from evo1cli.fileio import read_json
from evo1cli.model.flow_matching import uniform_noise
from evo1cli.model.policy import Evo1Model, Observation
from evo1cli.runtime.device import Placement, choose_placement

SEED_STRIDE = 100_003  # a prime larger than any episode's query count: (seed, index) pairs never collide


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def chunk_noise(shape: tuple[int, int], seed: int, index: int = 0) -> torch.Tensor:
    """The initial noise (H, D) of the chunk for query `index` of the episode seeded `seed`."""
    return uniform_noise(shape, torch.Generator().manual_seed(seed * SEED_STRIDE + index))


class LocalPolicy:
    """A checkpoint on a device behind the policy interface. Queries without stats keys use
    `embodiment` / `dataset` (None: the checkpoint's only ones)."""

    def __init__(
        self,
        model: Evo1Model,
        embodiment: str | None = None,
        dataset: str | None = None,
        placement: Placement | None = None,
        num_steps: int | None = None,
    ):
        self.model = model.eval()
        self.embodiment, self.dataset = embodiment, dataset
        self.placement = placement
        self.num_steps = num_steps
        self.views: dict[str, Any] = {}  # the checkpoint's views.json: each dataset's view cameras, fingerprints

    @classmethod
    def load(
        cls, checkpoint: str | Path, placement: Placement, embodiment: str | None = None, dataset: str | None = None
    ) -> LocalPolicy:
        from evo1cli.model.checkpoint import load_policy

        model = load_policy(checkpoint, dtype=placement.torch_dtype, device=placement.device)
        policy = cls(model, embodiment, dataset, placement)
        views = Path(checkpoint) / VIEWS_FILE
        if views.is_file():
            policy.views = read_json(views)
        return policy

    def trained_views(self) -> list[Any] | None:
        """The fingerprint of each view slot's camera in the data it was trained on (`data.views`), for the
        dataset it answers as (or its only one); None if the checkpoint does not say."""
        entries = self.views
        key = f"{self.embodiment}/{self.dataset}"
        entry = entries.get(key) or (next(iter(entries.values())) if len(entries) == 1 else None)
        return None if not isinstance(entry, dict) else entry.get("fingerprints")

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def metadata(self) -> dict[str, Any]:
        return describe(self.model)

    def close(self) -> None:
        """Nothing to free: the model stays loaded for whoever holds it."""

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]:
        if not queries:
            return []
        shape = (self.model.config.horizon, self.model.config.action_dim)
        noise = torch.stack(
            [uniform_noise(shape) if q.seed is None else chunk_noise(shape, q.seed, q.index) for q in queries]
        )
        observations = [
            Observation(q.images, q.prompt, q.state, q.embodiment or self.embodiment, q.dataset or self.dataset)
            for q in queries
        ]
        return self.model.predict(observations, noise=noise, num_steps=self.num_steps)


def describe(model: Evo1Model) -> dict[str, Any]:
    """What a checkpoint accepts and answers: its model, horizon and stats keys with their dims (the model
    part of the metadata `evo1 serve` sends on connect)."""
    config, entries = model.config, model.stats.entries
    return {
        "model": {"backbone": config.backbone, "image_size": config.image_size, "num_views": config.num_views},
        "horizon": config.horizon,
        "action_dims": {f"{e}/{d}": s.action.dim for (e, d), s in entries.items()},
        "state_dims": {f"{e}/{d}": s.state.dim for (e, d), s in entries.items()},
        "stats_keys": [{"embodiment": e, "dataset": d} for e, d in entries],
        "relative_actions": config.relative_actions,
        "relative_dims": config.relative_dims,
    }


def open_policy(
    checkpoint: str | Path | None = None,
    server: str | None = None,
    replay: str | Path | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    embodiment: str | None = None,
    dataset: str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    episode: int = 0,
    robot: Any = None,
    notify: Callable[[str], None] = _to_stderr,
) -> Policy:
    """The policy of a command (serve, bench, `model predict`, deploy): exactly one of a checkpoint (an evo1,
    authors' or LeRobot directory, or a hub id; run where `--device` / `--dtype` decide), a running
    `evo1 serve`, or episode `episode` of a recorded dataset (fitted to the robot configuration `robot`).
    `notify` gets one banner line saying what was opened and where (default: stderr, so stdout stays
    clean for --json). An impossible device or dtype fails before anything loads."""
    if sum(x is not None for x in (checkpoint, server, replay)) != 1:
        raise Evo1Error("give exactly one of --checkpoint DIR, --server URL and --replay DATASET", field="--checkpoint")
    if server is not None:
        from evo1cli.client.remote import PolicyClient, RemotePolicy

        remote = RemotePolicy(PolicyClient(server, token=token, retries=3, timeout_s=timeout_s), embodiment, dataset)
        notify(f"policy: evo1 serve at {server}")
        return remote
    if replay is not None:
        from evo1cli.deploy.replay import load_replay

        replayed = load_replay(str(replay), episode, robot)
        notify(f"policy: episode {episode} of {replay} ({len(replayed.actions)} actions)")
        return replayed
    return open_checkpoint(
        checkpoint, device=device, dtype=dtype, embodiment=embodiment, dataset=dataset, notify=notify
    )


def open_checkpoint(
    checkpoint: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    embodiment: str | None = None,
    dataset: str | None = None,
    notify: Callable[[str], None] = _to_stderr,
) -> LocalPolicy:
    """`open_policy`'s checkpoint case, for the commands that need the model itself (serve, bench's
    batched workers, `model predict`, the quickstart's evaluation)."""
    placement = choose_placement(device, dtype)
    from evo1cli.interop.resolve import resolve_checkpoint

    local = LocalPolicy.load(resolve_checkpoint(checkpoint, notify=notify), placement, embodiment, dataset)
    notify(placement.banner())
    return local
