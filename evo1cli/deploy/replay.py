"""`evo1 deploy --replay`: a recorded episode's actions as a policy, through the same loop and safety layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evo1cli.client.chunks import Query
from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION


class ReplayPolicy:
    """A recorded episode's actions as a policy: one chunk of all of them, executed from tick 0 in one
    synchronous query (`action_steps` = `max_ticks` = its length), through the same queue and safety
    layer as any policy. `start` is the recorded first pose, to move to (slowly) before replaying."""

    def __init__(
        self, actions: np.ndarray, start: np.ndarray, source: str = "", episode: int = 0, seed: int | None = None
    ):
        self.actions = np.asarray(actions, dtype=np.float64)
        self.start = np.asarray(start, dtype=np.float64)
        self.seed = seed  # the placement seed a digital twin recorded the episode with, if any
        self.metadata: dict[str, Any] = {"replay": source, "episode": episode, "horizon": len(self.actions)}

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]:
        return [self.actions for _ in queries]

    def close(self) -> None:
        pass


def load_replay(dataset: str, episode: int, config: Any) -> ReplayPolicy:
    """Episode `episode` of a recorded dataset as a `ReplayPolicy` for the robot of `config`."""
    meta = load_meta(dataset)
    if not 0 <= episode < len(meta.episodes):
        raise Evo1Error(f"the dataset has episodes 0..{len(meta.episodes) - 1}", path=dataset, field="--episode")
    if abs(meta.fps - config.control_hz) > 1e-6:
        raise Evo1Error(
            f"recorded at {meta.fps} fps but the robot runs at {config.control_hz:g} Hz (--set control_hz={meta.fps})",
            path=dataset,
            field="fps",
        )
    table = read_episode(meta, episode)
    assert table is not None  # read_episode raises on a problem by default
    dof = len(config.joints)
    if table.action.shape[1] != dof:
        raise Evo1Error(f"actions have {table.action.shape[1]} dims; the {config.robot} has {dof} joints",
                        path=dataset, field=ACTION)  # fmt: skip
    start = table.state[0] if table.state.shape[1] == dof else table.action[0]
    seed = meta.episodes[episode].extra.get("seed")
    return ReplayPolicy(table.action, start, dataset, episode, seed if isinstance(seed, int) else None)
