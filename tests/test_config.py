import json

import pytest

from evo1cli.errors import Evo1Error
from evo1cli.model.config import Evo1Config


def test_json_round_trip(tmp_path):
    config = Evo1Config.preset("tiny", horizon=16, dropout=0.2, normalization="normal")
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert Evo1Config.load(path) == config


def test_defaults_are_the_paper_model():
    c = Evo1Config()
    assert (c.backbone, c.llm_layers, c.image_size, c.embed_dim, c.num_layers, c.num_heads) == (
        "internvl3-1b", 14, 448, 896, 8, 8,
    )  # fmt: skip
    assert (c.horizon, c.action_dim, c.state_dim, c.ff_dim, c.num_inference_steps) == (50, 24, 24, 3584, 50)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"horizon": 0}, "horizon"),
        ({"state_dim": 25}, "state_dim"),
        ({"action_dim": 0}, "action_dim"),
        ({"backbone": "llama"}, "backbone"),
        ({"num_heads": 3}, "embed_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"normalization": "minmax"}, "normalization"),
        ({"attn_implementation": "flash"}, "attn_implementation"),
        ({"time_index_scale": 10}, "time_index_scale"),
        ({"horizon": "50"}, "horizon"),
        ({"horizon": True}, "horizon"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_values_name_file_and_field(tmp_path, change, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**Evo1Config.preset("tiny").to_dict(), **change}))
    with pytest.raises(Evo1Error) as info:
        Evo1Config.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: ")
    assert "\n" not in message


def test_tiny_without_weights_source_must_be_random():
    with pytest.raises(Evo1Error, match="backbone_init"):
        Evo1Config.preset("tiny", backbone_init="pretrained")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_malformed_files(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(Evo1Error, match=str(path)):
        Evo1Config.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(Evo1Error, match="file not found"):
        Evo1Config.load(tmp_path / "nope.json")
