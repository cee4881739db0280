"""Training windows: values, padding flags, frames, normalisation, workers, padded copies, mixing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CAMERA, WRIST, frame_value, make_dataset
from torch.utils.data import DataLoader

from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset, collate
from evo1cli.data.pad import pad_dataset
from evo1cli.data.stats import dataset_stats
from evo1cli.errors import Evo1Error
from evo1cli.model.normalization import FeatureStats

H = 5


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader") / "ds"
    make_dataset(root, lengths=(12, 9), cameras=(CAMERA, WRIST))
    return root


def _bounds(x, stats):  # the authors' bounds normalisation: 2 (x - min) / (max - min) - 1, clipped to [-1, 1]
    lo, hi = np.asarray(stats["min"]), np.asarray(stats["max"])
    return np.clip(2 * (x - lo) / (hi - lo) - 1, -1, 1)


def test_one_window_per_frame_with_padding_flags(dataset_dir):
    ds = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16)
    assert len(ds) == 21
    stats = dataset_stats(load_meta(dataset_dir))
    for i, (e, t, n) in enumerate([(0, 0, 12), (0, 9, 12), (0, 11, 12), (1, 8, 9)]):
        sample = ds[{0: 0, 1: 9, 2: 11, 3: 20}[i]]
        state = e * 100 + t + np.arange(8) / 10
        assert torch.allclose(sample["state"][:8], torch.tensor(_bounds(state, stats["observation.state"])).float())
        assert (sample["state"][8:] == 0).all()
        valid = [t + k < n for k in range(H)]
        assert sample["action_is_pad"].tolist() == [not v for v in valid]
        for k in range(H):
            step = min(t + k, n - 1)  # past the end: the last action repeated (and flagged)
            expected = _bounds(-(e * 100 + step + np.arange(4) / 10), stats["action"])
            assert torch.allclose(sample["actions"][k, :4], torch.tensor(expected).float(), atol=1e-6)
        assert (sample["actions"][:, 4:] == 0).all()
        assert sample["action_mask"].tolist() == [True] * 4 + [False] * 20
        assert sample["image_mask"].tolist() == [True, True, False]
        assert abs(sample["images"][0].float().mean() - frame_value(e, t)) < 3
        assert abs(sample["images"][1].float().mean() - frame_value(e, t) - 5) < 3
        assert (sample["images"][2] == 0).all()
        assert sample["prompt"] == ("reach the goal", "push the puck")[e]


def test_view_selection_and_empty_slots(dataset_dir):
    ds = WindowDataset([DataSource(dataset_dir, "arm", views=(WRIST, None, CAMERA))], horizon=H, image_size=16)
    sample = ds[3]
    assert sample["image_mask"].tolist() == [True, False, True]
    assert abs(sample["images"][0].float().mean() - frame_value(0, 3) - 5) < 3
    with pytest.raises(Evo1Error, match=r"no camera 'observation\.images\.side'"):
        WindowDataset([DataSource(dataset_dir, "arm", views=("observation.images.side",))], horizon=H, image_size=16)
    with pytest.raises(Evo1Error, match="4 views but the model has 3"):
        WindowDataset([DataSource(dataset_dir, "arm", views=(CAMERA,) * 4)], horizon=H, image_size=16)


def test_collate_makes_a_model_batch(dataset_dir):
    ds = WindowDataset([DataSource(dataset_dir, "arm", views=(CAMERA,))], horizon=H, image_size=16)
    batch = collate([ds[i] for i in (0, 11, 12)])
    assert batch.pixel_values.shape == (3, 3, 16, 16)  # one present view per sample
    assert batch.image_mask.tolist() == [[True, False, False]] * 3
    assert batch.state.shape == (3, 24) and batch.actions.shape == (3, H, 24) and batch.action_is_pad.shape == (3, H)
    assert batch.action_is_pad[1].tolist() == [False, True, True, True, True]


def test_state_noise_blurs_only_the_state_and_repeats_with_the_seed(dataset_dir):
    clean = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16)
    noisy = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16, state_noise=0.1)
    deltas = []
    for i in range(len(clean)):
        a, b = clean[i], noisy[(i, 1000 + i)]
        assert torch.equal(a["actions"], b["actions"]), "the targets stay those of the true state"
        assert (b["state"][8:] == 0).all(), "padding stays zero"
        deltas.append(b["state"][:8] - a["state"][:8])
        assert torch.equal(b["state"], noisy[(i, 1000 + i)]["state"]), "the window's seed fixes its noise"
    deltas = torch.stack(deltas)
    assert 0.07 < float(deltas.std()) < 0.13 and abs(float(deltas.mean())) < 0.03
    assert not torch.equal(noisy[(0, 1)]["state"], noisy[(0, 2)]["state"])


@pytest.mark.slow
def test_workers_return_the_same_windows(dataset_dir):
    ds = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16)
    inline = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=lambda s: s, persistent_workers=False)
    pooled = [s for batch in loader for s in batch]
    assert len(pooled) == len(inline)
    for a, b in zip(inline, pooled, strict=True):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["actions"], b["actions"])


def test_a_padded_copy_trains_identically(dataset_dir, tmp_path):
    padded = pad_dataset(dataset_dir, tmp_path / "padded")
    meta = load_meta(padded)
    assert meta.dim("observation.state") == meta.dim("action") == 24
    original = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16)
    copy = WindowDataset([DataSource(padded, "arm")], horizon=H, image_size=16)
    for i in (0, 7, 20):
        a, b = original[i], copy[i]
        for key in ("state", "actions", "action_mask", "action_is_pad", "images", "image_mask"):
            assert torch.equal(a[key], b[key]), key
    assert dataset_stats(meta)["action"]["max"] == dataset_stats(load_meta(dataset_dir))["action"]["max"]


def test_pad_and_the_loader_read_the_models_widths(dataset_dir, tmp_path):
    padded = pad_dataset(dataset_dir, tmp_path / "padded", state_dim=10, action_dim=6)
    meta = load_meta(padded)
    assert (meta.dim("observation.state"), meta.dim("action")) == (10, 6)
    windows = [WindowDataset([DataSource(d, "arm")], H, 16, state_dim=10, action_dim=6) for d in (dataset_dir, padded)]
    for key in ("state", "actions", "action_mask"):
        assert torch.equal(windows[0][7][key], windows[1][7][key]), key
    assert windows[0][7]["state"].shape == (10,) and windows[0][7]["actions"].shape == (H, 6)
    assert windows[0][7]["action_mask"].tolist() == [True] * 4 + [False] * 2
    with pytest.raises(Evo1Error, match="8 dims, more than the model's state_dim 6") as err:
        WindowDataset([DataSource(padded, "arm")], H, 16, state_dim=6)  # the native dims must fit, not the padded
    assert err.value.field == "observation.state.native_dim" and err.value.path.endswith("meta/evo1_padding.json")
    with pytest.raises(Evo1Error, match="has 8 dims, more than the state_dim 6 to pad to"):
        pad_dataset(dataset_dir, tmp_path / "narrow", state_dim=6)


def test_pad_command_takes_a_recipes_widths(dataset_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {preset: tiny, state_dim: 8, action_dim: 5}\ndata: {groups: {a: {b: {path: x}}}}\n")
    out = tmp_path / "padded"
    args = ["dataset", "pad", str(dataset_dir), "--out", str(out), "--recipe", str(recipe)]
    run = subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    meta = load_meta(out)
    assert (meta.dim("observation.state"), meta.dim("action")) == (8, 5)


def test_mixing_gives_each_source_its_weight(dataset_dir, tmp_path):
    small = tmp_path / "small"
    make_dataset(small, lengths=(3,), state_dim=6, action_dim=2)
    ds = WindowDataset([DataSource(dataset_dir, "arm", weight=1.0), DataSource(small, "other", weight=1.0)], H, 16)
    assert len(ds) == 24 and set(ds.stats.entries) == {("arm", "ds"), ("other", "small")}
    drawn = list(ds.sampler(4000, torch.Generator().manual_seed(0)))
    share = np.mean([ds.index[i, 0] == 1 for i in drawn])
    assert 0.45 < share < 0.55  # 3 windows of 24, drawn half the time
    sample = ds[21]
    assert sample["action_mask"].tolist() == [True] * 2 + [False] * 22
    assert (sample["state"][6:] == 0).all()


def test_given_stats_take_precedence(dataset_dir):
    from evo1cli.model.normalization import NormStats, StatsTable

    table = StatsTable()
    table.add(
        "arm", "ds", NormStats(FeatureStats.identity(8), FeatureStats(min=-np.ones(4) * 1000, max=np.ones(4) * 1000))
    )
    ds = WindowDataset([DataSource(dataset_dir, "arm")], horizon=H, image_size=16, stats=table)
    assert torch.allclose(ds[1]["actions"][0, 0], torch.tensor(-1 / 1000), atol=1e-6)
