from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import numpy as np
import pytest
import torch

from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Model, Observation
from evo1cli.serving.server import PolicyServer, ServeOptions

# A run started in the background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and so would
# every command the tests start; the Ctrl-C tests need the default back.
signal.signal(signal.SIGINT, signal.default_int_handler)

STATE_DIM, ACTION_DIM = 8, 4


def pytest_sessionfinish(session, exitstatus):
    """`pytest -m gpu` (or `pytest tests/gpu`) without CUDA: the GPU suite skipped itself in one line, which is
    success, not pytest's "no tests collected" (exit 5)."""
    if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if any("tests/gpu/" in str(report.nodeid) or "tests/gpu/" in str(report.location) for report in skipped):
        session.exitstatus = pytest.ExitCode.OK


@pytest.fixture(scope="session")
def tiny_config() -> Evo1Config:
    return Evo1Config.preset("tiny")


def make_stats() -> StatsTable:
    table = StatsTable()
    state = FeatureStats(min=np.linspace(-2, -1, STATE_DIM), max=np.linspace(1, 3, STATE_DIM))
    action = FeatureStats(min=np.array([-1.0, -1.0, -1.0, 0.0]), max=np.array([1.0, 1.0, 1.0, 0.5]))
    table.add("metaworld", "mt50", NormStats(state, action))
    return table


@pytest.fixture(scope="session")
def tiny_policy(tiny_config) -> Evo1Model:
    return Evo1Model.build(tiny_config, stats=make_stats()).eval()


def make_observation(seed: int = 0, views: int = 1, size: int = 96, prompt: str = "reach the goal") -> Observation:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size + 8 * i, 3), dtype=np.uint8) for i in range(views)]
    return Observation(images=images, prompt=prompt, state=rng.uniform(-1, 1, STATE_DIM))


def fixed_noise(batch: int, config: Evo1Config, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, config.horizon, config.action_dim, generator=g) * 2 - 1


# ---------------------------------------------------------------------------------------------- datasets
CAMERA = "observation.images.front"
WRIST = "observation.images.wrist"


def frame_value(episode: int, t: int) -> int:
    """The grey level of frame t of an episode in `make_dataset`: identifies the frame after decoding."""
    return (40 + 7 * t + 60 * episode) % 230


def make_dataset(
    root,
    lengths=(12, 9),
    state_dim: int = STATE_DIM,
    action_dim: int = ACTION_DIM,
    size: int = 32,
    cameras=(CAMERA,),
    fps: int = 20,
    tasks=("reach the goal", "push the puck"),
    seed: int = 0,
    version: str | None = None,
):
    """A small dataset written by evo1's writer (v2.1 unless `version`): state[t] = episode*100 + t + dim/10
    (+ noise-free), action[t] = -state[t][:action_dim]; each camera frame is a flat grey of `frame_value`."""
    from evo1cli.data.types import vector_feature
    from evo1cli.data.writer import Camera, DatasetWriter

    writer = DatasetWriter(
        root,
        fps,
        {"observation.state": vector_feature(state_dim), "action": vector_feature(action_dim)},
        [Camera(key, size, size) for key in cameras],
        robot_type="test",
        version=version,
    )
    first = len(writer.meta.episodes)
    for e, n in enumerate(lengths, start=first):
        with writer.episode() as episode:
            for t in range(n):
                state = (e * 100 + t + np.arange(state_dim) / 10).astype(np.float32)
                images = {
                    key: np.full((size, size, 3), frame_value(e, t) + 5 * k, np.uint8) for k, key in enumerate(cameras)
                }
                episode.add_frame(
                    {"observation.state": state, "action": -state[:action_dim]}, images, tasks[e % len(tasks)]
                )
            episode.commit()
    return writer.meta


# ---------------------------------------------------------------------------------------------- serving
class Running:
    """A PolicyServer on a free port in a background thread."""

    def __init__(self, policy: Evo1Model, seed: int | None = 7, **options):
        self.server = PolicyServer(policy, ServeOptions(port=0, seed=seed, **options))
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.task = self.loop.create_task(self.server.serve_forever(lambda port: ready.set()))
            with contextlib.suppress(asyncio.CancelledError):
                self.loop.run_until_complete(self.task)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(60)
        self.url = f"ws://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
