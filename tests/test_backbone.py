import pytest
import torch
from accelerate import init_empty_weights

from evo1cli.errors import Evo1Error
from evo1cli.model.backbone import Evo1Backbone
from evo1cli.model.config import Evo1Config
from evo1cli.model.tokenizer import IMG_CONTEXT


@pytest.fixture(scope="module")
def backbone():
    return Evo1Backbone.build(Evo1Config.preset("tiny"))


def pixels(n, size=112, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def full_prompt(backbone, present, instruction):
    n = backbone.tokens_per_image
    text = "".join(f"Image-{i + 1}: <img>{IMG_CONTEXT * n}</img>\n" for i in range(len(present)))
    return text + instruction.strip()


def test_tiny_geometry(backbone):
    assert backbone.tokens_per_image == 16 and backbone.image_size == 112 and backbone.hidden_size == 128
    assert len(backbone.model.language_model.layers) == 2


def test_prompt_ids_match_tokenising_the_whole_prompt(backbone):
    mask = torch.tensor([[True, True, True]])
    ids = backbone.build_prompts(mask, ["  Press a button from the top \n"])["input_ids"][0].tolist()
    expected = backbone.tokenizer(full_prompt(backbone, [1, 1, 1], "Press a button from the top"),
                                  add_special_tokens=False)["input_ids"]  # fmt: skip
    assert ids == expected


def test_absent_views_are_left_out_but_keep_their_positions(backbone):
    mask = torch.tensor([[True, False, True], [False, False, False]])
    p = backbone.build_prompts(mask, ["go", "go left now"])
    n = backbone.tokens_per_image
    ids, pos, att = p["input_ids"], p["position_ids"], p["attention_mask"]
    assert (ids[0] == backbone.image_token_id).sum() == 2 * n
    assert (ids[1] == backbone.image_token_id).sum() == 0
    full_len = [len(backbone.tokenizer(full_prompt(backbone, [1, 1, 1], s), add_special_tokens=False)["input_ids"])
                for s in ("go", "go left now")]  # fmt: skip
    assert att.sum(1).tolist() == [full_len[0] - n, full_len[1] - 3 * n]
    assert pos[0, att[0].bool()][-1].item() == full_len[0] - 1  # last token keeps its full-prompt position
    assert pos[1, att[1].bool()][-1].item() == full_len[1] - 1
    assert ids.shape[1] == att.sum(1).max()  # padded to the longest, not to 1024


def test_dropping_absent_views_equals_masking_them(backbone):
    """Our compact sequence gives every valid token the value it has in the authors' layout,
    where all placeholders are present and the absent ones are masked out of attention."""
    image_mask = torch.tensor([[True, False, True]])
    px = pixels(2)
    ours, valid = backbone(px, image_mask, ["stack the blocks"])

    tok = backbone.tokenizer(full_prompt(backbone, [1, 1, 1], "stack the blocks"), add_special_tokens=False)
    ids = torch.tensor([tok["input_ids"]])
    slots = ids == backbone.image_token_id
    feats = backbone.encode_images(pixels(3))  # view 2 gets garbage features: it must not matter
    feats[0], feats[2] = backbone.encode_images(px)
    embeds = backbone.model.get_input_embeddings()(ids).masked_scatter(slots[..., None], feats)
    attention = torch.ones_like(ids)
    n = backbone.tokens_per_image
    view2 = slots[0].nonzero()[n : 2 * n, 0]
    attention[0, view2] = 0
    reference = backbone.model.language_model(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
    keep = attention[0].bool()
    assert torch.allclose(ours[0, valid[0]], reference[0, keep], atol=1e-5)


def test_padding_and_absent_views_do_not_change_valid_tokens(backbone):
    alone, v1 = backbone(pixels(1), torch.tensor([[True, False, False]]), ["reach"])
    both, v2 = backbone(
        torch.cat([pixels(1), pixels(2, seed=5)]), torch.tensor([[True, False, False], [True, True, False]]),
        ["reach", "a much longer instruction than the first one"],
    )  # fmt: skip
    assert v2[0].sum() == v1[0].sum() < v2.shape[1]
    assert torch.allclose(alone[0], both[0, : alone.shape[1]], atol=1e-5)


def test_eager_and_sdpa_agree():
    backbone = Evo1Backbone.build(Evo1Config.preset("tiny"))
    args = (pixels(3), torch.tensor([[True, True, False], [False, True, False]]), ["a", "open the drawer"])
    sdpa, valid = backbone(*args)
    backbone.set_attention_backend("eager")
    eager, _ = backbone(*args)
    assert torch.allclose(sdpa[valid], eager[valid], atol=1e-5)


def test_save_and_load_from_a_local_directory(tmp_path, backbone):
    backbone.save_pretrained(tmp_path / "bb")
    config = Evo1Config.preset("tiny", backbone_path=str(tmp_path / "bb"), backbone_init="pretrained")
    loaded = Evo1Backbone.build(config)
    args = (pixels(1), torch.tensor([[False, True, False]]), ["close the window"])
    assert torch.equal(backbone(*args)[0], loaded(*args)[0])
    assert loaded.tokenizer(["abc"])["input_ids"] == backbone.tokenizer(["abc"])["input_ids"]


def test_load_keeps_the_first_llm_layers(tmp_path):
    deep = Evo1Backbone.build(Evo1Config.preset("tiny", llm_layers=4))
    deep.save_pretrained(tmp_path / "deep")
    source = {"backbone_path": str(tmp_path / "deep"), "backbone_init": "pretrained"}
    cut = Evo1Backbone.build(Evo1Config.preset("tiny", llm_layers=2, **source))
    assert len(cut.model.language_model.layers) == 2
    a, b = deep.model.language_model.layers[1], cut.model.language_model.layers[1]
    assert torch.equal(a.mlp.up_proj.weight, b.mlp.up_proj.weight)
    with pytest.raises(Evo1Error, match=r"llm_layers: .*only 4 LLM layers"):
        Evo1Backbone.build(Evo1Config.preset("tiny", llm_layers=6, **source))


def test_random_init_of_a_saved_architecture(tmp_path, backbone):
    backbone.save_pretrained(tmp_path / "arch", weights=False)
    config = Evo1Config.preset("tiny", backbone_path=str(tmp_path / "arch"), seed=3)
    a, b = Evo1Backbone.build(config), Evo1Backbone.build(config)
    assert torch.equal(
        a.model.vision_tower.embeddings.patch_embeddings.projection.weight,
        b.model.vision_tower.embeddings.patch_embeddings.projection.weight,
    )
    assert not torch.equal(
        a.model.vision_tower.embeddings.patch_embeddings.projection.weight,
        backbone.model.vision_tower.embeddings.patch_embeddings.projection.weight,
    )


def test_unloadable_sources_get_clear_errors(tmp_path):
    with pytest.raises(Evo1Error, match="backbone_path: cannot load"):
        Evo1Backbone.build(
            Evo1Config.preset("tiny", backbone_path=str(tmp_path / "missing"), backbone_init="pretrained")
        )
    with pytest.raises(Evo1Error, match="embed_dim"):
        Evo1Backbone.build(Evo1Config(backbone_init="random", embed_dim=128, num_heads=4))


def test_full_size_architecture_matches_the_paper():
    """InternViT-300M + projector + Qwen2.5-0.5B cut to 14 layers, counted without allocating weights."""
    with init_empty_weights():
        backbone = Evo1Backbone.build(Evo1Config(backbone_init="random"))
    model = backbone.model

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert backbone.tokens_per_image == 256 and backbone.hidden_size == 896
    assert len(model.language_model.layers) == 14
    assert count(model.vision_tower) == pytest.approx(304.0e6, rel=2e-3)
    assert count(model.multi_modal_projector) == pytest.approx(4.48e6, rel=2e-3)
    assert count(model.language_model.embed_tokens) == 151674 * 896
    assert count(model.language_model.layers[0]) == pytest.approx(14.91e6, rel=1e-3)
    assert count(model) + 122_029_360 == pytest.approx(775e6, rel=2e-3)


def test_loads_the_hub_layout_of_internvl3_hf(tmp_path, backbone):
    """`OpenGVLab/InternVL3-1B-hf` is saved as InternVLForConditionalGeneration (with `lm_head`);
    a small random model saved the same way must load with every weight in place."""
    from transformers import InternVLForConditionalGeneration

    full = InternVLForConditionalGeneration(backbone.model.config)
    full.model.load_state_dict(backbone.model.state_dict())
    full.save_pretrained(tmp_path / "hf")
    backbone.tokenizer.save_pretrained(tmp_path / "hf")
    loaded = Evo1Backbone.build(
        Evo1Config.preset("tiny", backbone_path=str(tmp_path / "hf"), backbone_init="pretrained")
    )
    for name, tensor in backbone.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
