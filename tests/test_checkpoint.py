import json
import os

import numpy as np
import pytest
import torch
from conftest import fixed_noise, make_observation, make_stats

from evo1cli.errors import Evo1Error
from evo1cli.model import checkpoint as ckpt
from evo1cli.model.checkpoint import load_policy, save_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.policy import Evo1Model


@pytest.fixture
def saved(tmp_path, tiny_policy):
    return save_policy(tiny_policy, tmp_path / "ckpt")


def test_round_trip_gives_bit_identical_actions(saved, tiny_policy, tiny_config):
    obs = [make_observation(0, views=2), make_observation(1)]
    noise = fixed_noise(2, tiny_config)
    loaded = load_policy(saved)
    assert loaded.config == tiny_policy.config
    assert set(loaded.stats) == set(tiny_policy.stats)
    for a, b in zip(tiny_policy.predict(obs, noise=noise), loaded.predict(obs, noise=noise), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in saved.iterdir()) == [
        "backbone",
        "config.json",
        "model.safetensors",
        "norm_stats.json",
    ]


def test_load_in_bfloat16(saved):
    policy = load_policy(saved, dtype=torch.bfloat16)
    assert policy.action_head.dtype == torch.bfloat16
    assert policy.predict([make_observation(0)])[0].dtype == np.float32


def test_overwrite_is_atomic(tmp_path, tiny_policy, monkeypatch):
    target = save_policy(tiny_policy, tmp_path / "ckpt")
    before = (target / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", explode)
    with pytest.raises(OSError):
        save_policy(Evo1Model.build(Evo1Config.preset("tiny", seed=9), stats=make_stats()), target)
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no staging leftovers"


def test_truncated_weights(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(Evo1Error, match=f"^{weights}: truncated or corrupt"):
        load_policy(saved)


def test_garbage_header(saved):
    (saved / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(Evo1Error, match=r"model\.safetensors: truncated or corrupt"):
        load_policy(saved)


def test_weights_that_do_not_match_the_config(saved):
    config = json.loads((saved / "config.json").read_text())
    config["num_layers"] = 6
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(Evo1Error, match=r"model.safetensors: missing tensor action_head.transformer_blocks.4"):
        load_policy(saved)
    config["num_layers"], config["hidden_dim"] = 4, 300
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        Evo1Error,
        match=r"tensor action_head.mlp_head.fc1.linear.weight has shape \(256, 128\), the config expects \(300, 128\)",
    ):
        load_policy(saved)


@pytest.mark.parametrize("name", ["config.json", "norm_stats.json", "model.safetensors"])
def test_missing_files(saved, name):
    os.unlink(saved / name)
    with pytest.raises(Evo1Error, match=f"{name}: file not found"):
        load_policy(saved)


def test_bad_config_in_checkpoint(saved):
    (saved / "config.json").write_text(json.dumps({**json.loads((saved / "config.json").read_text()), "horizon": 0}))
    with pytest.raises(Evo1Error, match=r"config.json: horizon: must be >= 1"):
        load_policy(saved)


def test_not_a_directory(tmp_path):
    with pytest.raises(Evo1Error, match="not a checkpoint directory"):
        load_policy(tmp_path / "nothing")
