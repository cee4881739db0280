"""The backbone: InternVL3 as an embedder of (camera views, instruction) -> context tokens.

InternViT encodes each *present* view into 256 tokens (448 px, pixel shuffle 0.5, MLP projector);
they replace the `<IMG_CONTEXT>` placeholders of the prompt

    for each view slot i = 1..V:  "Image-{i}: <img>" + n x <IMG_CONTEXT> + "</img>\\n"
    then the stripped instruction

and the first `llm_layers` decoder layers of the Qwen2 LLM (with its final RMSNorm) turn the prompt
into hidden states (B, T, E). All of them go to the action head, with a mask of the valid ones.

Two savings against the authors' embedder, neither of which changes a valid token's value:
- an absent view is not run through the vision tower and its n placeholders are left out of the
  sequence; the position ids keep their gap, so with rotary positions every remaining token sees
  exactly what it would see if the placeholders were there and masked out;
- prompts are right-padded to the longest in the batch, not to 1024 tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, InternVLConfig, InternVLModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from evo1cli.errors import Evo1Error
from evo1cli.model.config import Evo1Config
from evo1cli.model.tokenizer import IMG_CONTEXT, IMG_END, IMG_START, byte_tokenizer

INTERNVL3_1B_HUB_ID = "OpenGVLab/InternVL3-1B-hf"


def architecture(config: Evo1Config, tokenizer: PreTrainedTokenizerBase) -> InternVLConfig:
    """The `InternVLConfig` of a preset, with the LLM already cut to `config.llm_layers`."""
    image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    if config.backbone == "internvl3-1b":
        vision = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
        text = dict(
            hidden_size=896,
            intermediate_size=4864,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151674,
            max_position_embeddings=32768,
        )
    else:  # tiny: the same family, small enough to train on a laptop CPU
        vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
        text = dict(
            hidden_size=config.embed_dim,
            intermediate_size=2 * config.embed_dim,
            num_attention_heads=config.num_heads,
            num_key_value_heads=max(1, config.num_heads // 2),
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
        )
    vision.update(
        image_size=config.image_size, patch_size=14, attention_bias=True, norm_type="layer_norm",
        layer_norm_eps=1e-6, use_mean_pooling=True, layer_scale_init_value=0.1,
    )  # fmt: skip
    text.update(
        model_type="qwen2", num_hidden_layers=config.llm_layers, rope_theta=1e6, rms_norm_eps=1e-6,
        tie_word_embeddings=True, hidden_act="silu",
    )  # fmt: skip
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )


class Evo1Backbone(nn.Module):
    """InternVL3 (native `transformers` classes) as the Evo-1 embedder."""

    def __init__(self, model: InternVLModel, tokenizer: PreTrainedTokenizerBase, num_views: int):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.num_views = num_views
        cfg = model.config
        vision = cfg.vision_config
        if cfg.vision_feature_layer != -1 or cfg.vision_feature_select_strategy != "default":
            raise Evo1Error("only the last vision layer without CLS is supported", field="vision_feature_layer")
        patches = (vision.image_size[0] // vision.patch_size[0]) ** 2
        self.image_size = int(vision.image_size[0])
        self.tokens_per_image = int(patches * cfg.downsample_ratio**2)  # 256 at 448 px
        self.hidden_size = int(cfg.text_config.hidden_size)
        self.image_token_id = int(cfg.image_token_id)
        ids = self._ids
        self._view_prefix = [ids(f"Image-{i + 1}: {IMG_START}") for i in range(num_views)]
        self._view_suffix = ids(f"{IMG_END}\n")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # ------------------------------------------------------------------ building and saving
    @classmethod
    def build(cls, config: Evo1Config, dtype: torch.dtype = torch.float32) -> Evo1Backbone:
        """Per the config: pretrained weights from a hub id or local directory, or a seeded random
        init (of the architecture and tokenizer in `backbone_path` if given, else of the preset
        with the offline byte tokenizer)."""
        if config.backbone_init == "pretrained":
            return cls.from_pretrained(config.backbone_path or INTERNVL3_1B_HUB_ID, config, dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.backbone_path:
                return cls.from_architecture(config.backbone_path, config, dtype)
            tokenizer = byte_tokenizer()
            arch = _fit_architecture(architecture(config, tokenizer), config, f"the {config.backbone} preset")
            return cls._initialised(arch, tokenizer, config, dtype)

    @classmethod
    def from_pretrained(
        cls, source: str | Path, config: Evo1Config, dtype: torch.dtype = torch.float32
    ) -> Evo1Backbone:
        """Load InternVL3 weights from a hub id or a directory, keeping the first `llm_layers` layers."""
        arch = _load_architecture(source, config)
        try:
            with _quiet_transformers():  # the dropped LLM layers are reported as unused weights
                model = InternVLModel.from_pretrained(
                    str(source), config=arch, dtype=dtype, attn_implementation=config.attn_implementation
                )
        except (OSError, ValueError) as err:
            raise Evo1Error(
                f"cannot load weights from {source!s} ({_first_line(err)})", field="backbone_path"
            ) from None
        return cls(model.eval(), _load_tokenizer(source), config.num_views)

    @classmethod
    def from_architecture(
        cls, directory: str | Path, config: Evo1Config, dtype: torch.dtype = torch.float32
    ) -> Evo1Backbone:
        """The architecture and tokenizer saved in `directory`, weights freshly initialised.

        Used under `accelerate.init_empty_weights()` by checkpoint loading, which then assigns
        the checkpoint's tensors.
        """
        return cls._initialised(_load_architecture(directory, config), _load_tokenizer(directory), config, dtype)

    @classmethod
    def _initialised(
        cls, arch: InternVLConfig, tokenizer: PreTrainedTokenizerBase, config: Evo1Config, dtype: torch.dtype
    ) -> Evo1Backbone:
        model = InternVLModel._from_config(arch, attn_implementation=config.attn_implementation, dtype=dtype)
        return cls(model.eval(), tokenizer, config.num_views)

    def save_pretrained(self, directory: str | Path, weights: bool = True) -> None:
        """Write the architecture and tokenizer (and, unless `weights=False`, the weights)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if weights:
            with _quiet_transformers():
                self.model.save_pretrained(directory)
        else:
            self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def set_attention_backend(self, name: str) -> None:
        self.model.set_attn_implementation(name)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each vision and LLM layer's activations in backward instead of keeping them."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    # ------------------------------------------------------------------ embedding
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @lru_cache(maxsize=4096)  # noqa: B019 - instructions repeat across a rollout; the cache dies with the model
    def _instruction_ids(self, instruction: str) -> tuple[int, ...]:
        return tuple(self._ids(instruction.strip()))

    def build_prompts(self, image_mask: torch.Tensor, instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids, attention mask and position ids of a batch, right-padded to its longest prompt.

        image_mask: (B, V) bool. Returns input_ids, attention_mask, position_ids, each (B, T).
        """
        n = self.tokens_per_image
        rows: list[list[int]] = []
        positions: list[list[int]] = []
        for present, instruction in zip(image_mask.tolist(), instructions, strict=True):
            ids: list[int] = []
            pos: list[int] = []
            p = 0
            for prefix, has_view in zip(self._view_prefix, present, strict=True):
                placeholders = [self.image_token_id] * n if has_view else []  # absent: none in the sequence
                for piece, width in (
                    (prefix, len(prefix)),
                    (placeholders, n),
                    (self._view_suffix, len(self._view_suffix)),
                ):
                    ids += piece
                    pos += range(p, p + len(piece))
                    p += width  # the n positions of an absent view stay taken
            tail = self._instruction_ids(instruction)
            ids += tail
            pos += range(p, p + len(tail))
            rows.append(ids)
            positions.append(pos)
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        position_ids = torch.arange(length).repeat(len(rows), 1)
        attention_mask = torch.zeros(len(rows), length, dtype=torch.long)
        for b, (ids, pos) in enumerate(zip(rows, positions, strict=True)):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            position_ids[b, : len(pos)] = torch.tensor(pos)
            position_ids[b, len(pos) :] += pos[-1] + 1 - len(pos)  # pads continue after the last token
            attention_mask[b, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels -> (N, n, E) image tokens (vision tower, pixel shuffle, projector)."""
        model = self.model
        h = model.vision_tower(pixel_values=pixel_values.to(model.dtype)).last_hidden_state[:, 1:]  # drop CLS
        side = int(h.shape[1] ** 0.5)
        h = model.pixel_shuffle(h.reshape(h.shape[0], side, side, -1), scale_factor=model.config.downsample_ratio)
        return model.multi_modal_projector(h.reshape(h.shape[0], -1, h.shape[-1]))

    def forward(
        self, pixel_values: torch.Tensor, image_mask: torch.Tensor, instructions: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed a batch.

        pixel_values: (N, 3, S, S), the present views in (sample, view) order, N = image_mask.sum()
        image_mask:   (B, V) bool, which view slots hold an image
        instructions: B strings
        Returns the context (B, T, E) and its validity mask (B, T) bool (False on padding).
        """
        if image_mask.shape[1] != self.num_views:
            raise Evo1Error(f"expected {self.num_views} view slots, got {image_mask.shape[1]}", field="image_mask")
        if pixel_values.shape[0] != int(image_mask.sum()):
            raise Evo1Error(f"{int(image_mask.sum())} views are marked present but {pixel_values.shape[0]} were given")
        device = self.model.device
        prompt = {k: v.to(device) for k, v in self.build_prompts(image_mask.cpu(), instructions).items()}
        embeds = self.model.get_input_embeddings()(prompt["input_ids"])
        if pixel_values.shape[0]:
            features = self.encode_images(pixel_values.to(device))
            slots = (prompt["input_ids"] == self.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(slots, features.to(embeds.dtype))
        hidden = self.model.language_model(
            inputs_embeds=embeds,
            attention_mask=prompt["attention_mask"],
            position_ids=prompt["position_ids"],
            use_cache=False,
        ).last_hidden_state  # after the final RMSNorm
        return hidden, prompt["attention_mask"].bool()


# ---------------------------------------------------------------------- loading helpers
@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (we report errors ourselves)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        raise Evo1Error(
            f"cannot load a tokenizer from {source!s} ({_first_line(err)})", field="backbone_path"
        ) from None
    if tokenizer.convert_tokens_to_ids(IMG_CONTEXT) in (None, tokenizer.unk_token_id):
        raise Evo1Error(f"the tokenizer in {source!s} has no {IMG_CONTEXT} token", field="backbone_path")
    return tokenizer


def _load_architecture(source: str | Path, config: Evo1Config) -> Any:
    try:
        arch = AutoConfig.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        hint = "" if Path(source).exists() else "; offline, pass a local directory or use random weights"
        message = f"cannot load a config from {source!s} ({_first_line(err)}){hint}"
        raise Evo1Error(message, field="backbone_path") from None
    if getattr(arch, "model_type", None) != "internvl":
        raise Evo1Error(f"{source!s} is not an InternVL model (model_type {arch.model_type!r})", field="backbone_path")
    return _fit_architecture(arch, config, source)


def _fit_architecture(arch: Any, config: Evo1Config, source: str | Path) -> Any:
    """Cut the LLM to `config.llm_layers` and check that the widths agree with the config."""
    text = arch.text_config
    if config.llm_layers > text.num_hidden_layers:
        raise Evo1Error(f"{source!s} has only {text.num_hidden_layers} LLM layers", field="llm_layers")
    text.num_hidden_layers = config.llm_layers
    if getattr(text, "layer_types", None):
        text.layer_types = text.layer_types[: config.llm_layers]
    checks = {
        "embed_dim": (config.embed_dim, text.hidden_size),
        "image_size": (config.image_size, arch.vision_config.image_size[0]),
    }
    for name, (want, have) in checks.items():
        if want != have:
            raise Evo1Error(f"is {want} but the backbone in {source!s} has {have}", field=name)
    return arch
