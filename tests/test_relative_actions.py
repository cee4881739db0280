"""Relative actions: the pair of maps, the loader's targets and their stats, and a model trained on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CAMERA, make_stats

from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset
from evo1cli.data.reader import read_episode
from evo1cli.data.stats import dataset_stats, load_stats, write_stats
from evo1cli.data.types import vector_feature
from evo1cli.data.writer import Camera, DatasetWriter
from evo1cli.errors import Evo1Error
from evo1cli.model.checkpoint import load_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import FeatureStats, Normalizer
from evo1cli.model.policy import Evo1Model, Observation
from evo1cli.model.relative_actions import to_absolute, to_relative
from evo1cli.train.recipe import parse_recipe
from evo1cli.train.trainer import train

H = 8
STEP = np.array([0.05, -0.03, 0.02])  # the state moves by this much per frame, in every episode


def drift_dataset(root, episodes: int = 6, length: int = 24, size: int = 32) -> None:
    """State s_t = offset_e + t * STEP (+ a 4th dim) from a random offset per episode, action a_t = s_{t+1}[:3].

    Absolute targets depend on where the episode started (offsets spread over +-5); relative targets
    a_{t+k} - s_t = (k + 1) * STEP are the same chunk everywhere: the easy ones to learn."""
    rng = np.random.default_rng(0)
    writer = DatasetWriter(
        root, 20, {"observation.state": vector_feature(4), "action": vector_feature(3)}, [Camera(CAMERA, size, size)]
    )
    for _ in range(episodes):
        offset = rng.uniform(-5, 5, 4)
        states = offset + np.arange(length + 1)[:, None] * np.append(STEP, 0.01)
        with writer.episode() as episode:
            for t in range(length):
                image = np.full((size, size, 3), 128, np.uint8)
                values = {
                    "observation.state": states[t].astype(np.float32),
                    "action": states[t + 1, :3].astype(np.float32),
                }
                episode.add_frame(values, {CAMERA: image}, "follow the drift")
            episode.commit()


@pytest.fixture(scope="module")
def drift(tmp_path_factory):
    root = tmp_path_factory.mktemp("relative") / "drift"
    drift_dataset(root)
    return root


def test_the_pair_are_inverses_for_numpy_and_torch():
    rng = np.random.default_rng(1)
    actions, state = rng.normal(size=(2, H, 3)), rng.normal(size=(2, 5))
    offsets = to_relative(actions, state)
    assert np.allclose(offsets[1, 4], actions[1, 4] - state[1, :3])  # every step minus the chunk's first state
    assert np.allclose(to_absolute(offsets, state), actions)
    t_actions, t_state = torch.from_numpy(actions), torch.from_numpy(state)
    assert torch.allclose(to_absolute(to_relative(t_actions, t_state), t_state), t_actions)
    with pytest.raises(Evo1Error, match="state at least as long as the action"):
        to_relative(actions, state[:, :2])


def test_dims_after_the_relative_ones_stay_absolute():
    """A gripper after the arm's joints: its command is not an offset (its measured opening stops at the
    object's width, so offsets from it would drift chunk after chunk)."""
    rng = np.random.default_rng(2)
    actions, state = rng.normal(size=(2, H, 3)), rng.normal(size=(2, 5))
    targets = to_relative(actions, state, dims=2)
    assert np.allclose(targets[..., :2], actions[..., :2] - state[:, None, :2])
    assert np.array_equal(targets[..., 2], actions[..., 2])  # untouched
    assert np.allclose(to_absolute(targets, state, dims=2), actions)
    t_actions, t_state = torch.from_numpy(actions), torch.from_numpy(state)
    t_targets = to_relative(t_actions, t_state, dims=2)
    assert torch.allclose(t_targets, torch.from_numpy(targets)) and torch.equal(t_targets[..., 2], t_actions[..., 2])
    assert torch.allclose(to_absolute(t_targets, t_state, dims=2), t_actions)
    assert np.allclose(to_relative(actions, state, dims=7), to_relative(actions, state))  # more than D: all of them
    two = state[:, :2]  # a state as long as the relative dims is enough
    assert np.allclose(to_relative(actions, two, dims=2)[..., :2], actions[..., :2] - two[:, None])
    with pytest.raises(Evo1Error, match="2 state dims, 3 relative action dims"):
        to_relative(actions, two)
    with pytest.raises(Evo1Error, match="relative_dims"):
        Evo1Config.preset("tiny", relative_actions=True, relative_dims=-1)


def test_the_loader_trains_on_offsets_normalised_with_their_own_stats(drift):
    meta = load_meta(drift)
    stats = dataset_stats(meta, relative_horizon=H)
    targets = []  # every target of every window inside its episode, by hand
    for e in range(len(meta.episodes)):
        table = read_episode(meta, e)
        n = len(table.action)
        targets += [table.action[t + k] - table.state[t, :3] for t in range(n) for k in range(H) if t + k < n]
    targets = np.asarray(targets, dtype=np.float64)
    assert stats["action"]["count"] == len(targets)
    assert np.allclose(stats["action"]["min"], targets.min(0)) and np.allclose(stats["action"]["max"], targets.max(0))
    assert np.allclose(stats["action"]["min"], np.minimum(STEP, H * STEP), atol=1e-5)  # (k + 1) * STEP, k < H
    write_stats(meta, stats)
    assert load_stats(meta) is None and load_stats(meta, relative_horizon=H) is not None  # stats know their targets

    windows = WindowDataset([DataSource(drift, "arm")], H, 32, relative_actions=True, state_dim=4, action_dim=3)
    relative = FeatureStats.from_dict(stats["action"], "action")
    assert np.allclose(windows.stats.get().action.max, relative.max)
    sample = windows[5]  # episode 0, t = 5
    table = read_episode(meta, 0)
    expected = Normalizer("bounds", 3).normalize(table.action[5 : 5 + H] - table.state[5, :3], relative)
    assert sample["actions"].shape == (H, 3) and torch.allclose(sample["actions"], expected, atol=1e-6)
    assert torch.allclose(sample["actions"][:, 0], torch.linspace(-1, 1, H), atol=1e-3)  # the same chunk everywhere


def test_the_loader_keeps_dims_after_relative_dims_absolute_with_stats_to_match(drift):
    meta = load_meta(drift)
    stats = dataset_stats(meta, relative_horizon=H, relative_dims=2)
    assert stats["evo1"]["relative_dims"] == 2
    table = read_episode(meta, 0)
    absolute = table.action[:, 2]
    assert stats["action"]["min"][2] <= absolute.min() + 1e-6 and stats["action"]["max"][2] >= absolute.max() - 1e-6
    assert np.allclose(stats["action"]["min"][:2], np.minimum(STEP, H * STEP)[:2], atol=1e-5)  # offsets
    write_stats(meta, stats)
    assert load_stats(meta, relative_horizon=H) is None  # computed for other targets: recomputed
    assert load_stats(meta, relative_horizon=H, relative_dims=2) is not None

    windows = WindowDataset(
        [DataSource(drift, "arm")], H, 32, relative_actions=True, relative_dims=2, state_dim=4, action_dim=3
    )
    norm = windows.stats.get().action
    sample = windows[5]  # episode 0, t = 5
    target = table.action[5 : 5 + H].astype(np.float64)
    target[:, :2] -= table.state[5, :2]
    expected = Normalizer("bounds", 3).normalize(torch.from_numpy(target), norm)
    assert torch.allclose(sample["actions"], expected.float(), atol=1e-6)


def test_predict_adds_the_state_back_to_the_relative_dims_only(tiny_config):
    config = tiny_config.replace(horizon=8, num_inference_steps=2)
    absolute = Evo1Model.build(config, stats=make_stats()).eval()
    relative = Evo1Model.build(config.replace(relative_actions=True, relative_dims=3), stats=make_stats()).eval()
    noise = torch.from_numpy(np.random.default_rng(3).uniform(-1, 1, (1, 8, config.action_dim)).astype(np.float32))
    image = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    state = np.arange(1, 9, dtype=np.float32)
    plain = absolute.predict([Observation([image], "reach", state)], noise=noise)[0]
    chunk = relative.predict([Observation([image], "reach", state)], noise=noise)[0]
    assert chunk.shape == (8, 4)
    assert np.allclose(chunk[:, :3], plain[:, :3] + state[:3], atol=1e-5)
    assert np.allclose(chunk[:, 3], plain[:, 3], atol=1e-6)  # the gripper: as predicted


def test_a_state_shorter_than_the_action_is_refused(tmp_path):
    features = {"observation.state": vector_feature(2), "action": vector_feature(3)}
    writer = DatasetWriter(tmp_path / "short", 20, features, [])
    with writer.episode() as episode:
        for _ in range(4):
            episode.add_frame(
                {"observation.state": np.zeros(2, np.float32), "action": np.zeros(3, np.float32)}, {}, "x"
            )
        episode.commit()
    with pytest.raises(Evo1Error, match="2 dims, fewer than the action's 3") as err:
        WindowDataset([DataSource(tmp_path / "short", "arm")], H, 16, relative_actions=True)
    assert err.value.field == "features.observation.state.shape" and err.value.path.endswith("meta/info.json")


@pytest.mark.slow
def test_trained_on_offsets_predictions_come_back_absolute_and_right(drift, tmp_path):
    raw = {
        "name": "relative",
        "output": str(tmp_path / "run"),
        "model": {"preset": "tiny", "image_size": 32, "horizon": H, "relative_actions": True},
        "data": {"augmentation": False, "num_workers": 0, "groups": {"arm": {"drift": {"path": str(drift)}}}},
        "train": {"batch_size": 16, "lr": 3e-3, "warmup_steps": 10, "noise_draws": 4},
        "stage1": {"steps": 80},
        "stage2": {"steps": 1, "warmup_steps": 0},
        "logging": {"every": 50, "tensorboard": False},
    }
    result = train(parse_recipe(raw), stages=(1,))[0]
    policy = load_policy(result.checkpoint)
    assert policy.config.relative_actions  # the checkpoint records how it was trained
    image = np.full((32, 32, 3), 128, np.uint8)
    centre = torch.zeros(1, H, policy.config.action_dim)  # the noise's centre: the chunk the flow has learned best
    for state in ([3.0, -4.0, 1.5, 0.2], [-2.0, 0.5, -3.5, 0.0]):  # starting points never recorded
        chunk = policy.predict([Observation([image], "follow the drift", state)], noise=centre)[0]
        expected = np.asarray(state[:3]) + np.arange(1, H + 1)[:, None] * STEP
        assert chunk.shape == (H, 3)
        assert np.abs(chunk - expected).max() < 0.02, chunk - expected  # absolute, and right to 1/20 of the drift
