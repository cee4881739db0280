"""The Evo-1 authors' checkpoint format (github.com/MINT-SJTU/Evo-1), read and written: `FORMAT`.

A release or training tag directory holds
    mp_rank_00_model_states.pt   DeepSpeed model states: the full state dict under `module` (bf16)
    or checkpoint.pt             their plain-torch form: {config, norm_stats, model_state_dict, ...}
    checkpoint.json              {"type": "ds_model" | "torch_model", ...}: which of the two
    config.json                  their training arguments (head sizes may be absent: defaults apply)
    norm_stats.json              {arm: {observation.state, action}} or {arm: {dataset: {...}}}
A DeepSpeed save directory with a `latest` file names its tag directory in that file.

Their backbone is InternVL3 in its remote-code form; evo1 runs the native `transformers` classes. The
names map as in transformers' InternVL conversion script (`vision_model` -> `vision_tower`, `ls1` ->
`lambda_1`, `attn.proj` -> `attention.projection_layer`, `mlp1.0/1/3` -> `multi_modal_projector.*`, ...)
and the remote-code fused `attn.qkv` (rows q, k, v) splits into `q_proj`, `k_proj`, `v_proj`. The head's
names are the same on both sides, its two sinusoid tables included (taken from the file: the authors
saved them rounded to bf16).

Conventions: the Nov-2025 releases (branch `main`, a config without `num_inference_timesteps`) sample
with 32 Euler steps and time index floor(t * 1000); the later branch with 50 steps and floor(t * 999).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from evo1cli.errors import Evo1Error
from evo1cli.fileio import read_json
from evo1cli.interop.foreign import CheckpointFormat, ExportOptions, Foreign, safe_torch_load, weight_dims
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import DEFAULT_DATASET, StatsTable
from evo1cli.model.policy import Evo1Model

DEEPSPEED_FILE = "mp_rank_00_model_states.pt"
TORCH_FILE = "checkpoint.pt"
POINTER_FILE = "checkpoint.json"
CONFIG_FILE = "config.json"
STATS_FILE = "norm_stats.json"
AUTHORS_LLM_LAYERS = 14  # their embedder keeps the first 14 LLM layers, hard-coded
AUTHORS_VIEWS = 3
REMOTE_BACKBONE = "OpenGVLab/InternVL3-1B"  # the remote-code repo their code loads

# (authors' prefix, evo1 prefix); "#" stands for a layer index
_PREFIXES = [
    ("embedder.model.vision_model.", "backbone.model.vision_tower."),
    ("embedder.model.mlp1.0.", "backbone.model.multi_modal_projector.layer_norm."),
    ("embedder.model.mlp1.1.", "backbone.model.multi_modal_projector.linear_1."),
    ("embedder.model.mlp1.3.", "backbone.model.multi_modal_projector.linear_2."),
    ("embedder.model.language_model.model.", "backbone.model.language_model."),
    ("action_head.", "action_head."),
]
# InternViT, remote-code name <-> native name, below the vision prefix. The first match wins in both
# directions, so a more specific pattern comes before a more general one.
_VISION = [
    ("embeddings.class_embedding", "embeddings.cls_token"),
    ("embeddings.position_embedding", "embeddings.position_embeddings"),
    ("embeddings.patch_embedding.", "embeddings.patch_embeddings.projection."),
    ("encoder.layers.#.ls1", "encoder.layer.#.lambda_1"),
    ("encoder.layers.#.ls2", "encoder.layer.#.lambda_2"),
    ("encoder.layers.#.attn.proj.", "encoder.layer.#.attention.projection_layer."),
    ("encoder.layers.#.attn.", "encoder.layer.#.attention."),
    ("encoder.layers.#.mlp.", "encoder.layer.#.mlp."),
    ("encoder.layers.#.norm1.", "encoder.layer.#.layernorm_before."),
    ("encoder.layers.#.norm2.", "encoder.layer.#.layernorm_after."),
]
_DROPPED = ("embedder.model.language_model.lm_head.",)  # replaced by Identity in their embedder
_QKV = re.compile(r"^(.*\.attention\.)qkv\.(weight|bias)$")
_QKV_PARTS = ("q_proj", "k_proj", "v_proj")


def _rename(name: str, table: list[tuple[str, str]], forward: bool) -> str | None:
    """Map `name` through the first matching pattern of `table` (authors -> evo1 if `forward`)."""
    for a, b in table:
        src, dst = (a, b) if forward else (b, a)
        pattern = re.escape(src).replace("\\#", r"(\d+)").replace("#", r"(\d+)")
        m = re.match(pattern if src.endswith(".") else pattern + "$", name)
        if m:
            out = dst
            for index in m.groups():
                out = out.replace("#", index, 1)
            return out + name[m.end() :]
    return None


def map_name(name: str, forward: bool) -> str:
    """An authors' state-dict name -> evo1's if `forward`, else evo1's -> theirs."""
    for theirs, ours in _PREFIXES:
        src, dst = (theirs, ours) if forward else (ours, theirs)
        if name.startswith(src):
            rest: str | None = name[len(src) :]
            if theirs == _PREFIXES[0][0]:  # the vision tower: renamed below the prefix too
                rest = _rename(rest, _VISION, forward)
            if rest is not None:
                return dst + rest
    where = "the authors' Evo-1 format" if forward else "evo1's format"
    raise Evo1Error(f"unexpected tensor {name} (not part of {where})")


def to_evo1_weights(module: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The authors' state dict -> evo1's: renamed, each fused qkv split in three."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in module.items():
        if not isinstance(tensor, torch.Tensor):
            raise Evo1Error(f"entry {name} is not a tensor", path=path)
        if name.startswith(_DROPPED):
            continue
        try:
            ours = map_name(name, forward=True)
        except Evo1Error as err:
            raise err.at(path) from None
        qkv = _QKV.match(ours)
        if qkv:
            if tensor.shape[0] % 3:
                raise Evo1Error(f"{name} has {tensor.shape[0]} rows, not a multiple of 3", path=path)
            for part, chunk in zip(_QKV_PARTS, tensor.chunk(3, dim=0), strict=True):
                out[f"{qkv.group(1)}{part}.{qkv.group(2)}"] = chunk.contiguous()
        else:
            out[ours] = tensor
    return out


def to_authors_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """evo1's state dict -> the authors': renamed, q/k/v fused back into one qkv (the inverse of the above)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        parts = re.match(r"^(.*\.attention\.)(q_proj|k_proj|v_proj)\.(weight|bias)$", name)
        if parts and name.startswith("backbone.model.vision_tower."):
            if parts.group(2) != "q_proj":
                continue  # fused with the q_proj entry
            prefix, kind = parts.group(1), parts.group(3)
            fused = torch.cat([state[f"{prefix}{p}.{kind}"] for p in _QKV_PARTS], dim=0)
            out[map_name(f"{prefix}qkv.{kind}", forward=False)] = fused
        else:
            out[map_name(name, forward=False)] = tensor
    return out


# ---------------------------------------------------------------------------------------------- reading
def tag_directory(directory: Path) -> Path:
    """A DeepSpeed save directory's `latest` tag, or the directory itself."""
    latest = directory / "latest"
    if latest.is_file() and not (directory / DEEPSPEED_FILE).exists():
        tag = latest.read_text().strip()
        if not tag or not (directory / tag).is_dir():
            raise Evo1Error(f"names tag {tag!r}, which is not a directory here", path=latest)
        return directory / tag
    return directory


def weights_file(directory: Path) -> tuple[Path, str]:
    """(the weights file, "deepspeed" or "torch") of a tag directory."""
    pointer = directory / POINTER_FILE
    if pointer.is_file():
        info = read_json(pointer)
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "ds_model":
            return directory / str(info.get("checkpoints") or DEEPSPEED_FILE), "deepspeed"
        if kind == "torch_model":
            return directory / str(info.get("checkpoint_file") or TORCH_FILE), "torch"
        raise Evo1Error(f"unknown checkpoint type {kind!r} (expected ds_model or torch_model)", path=pointer)
    if (directory / DEEPSPEED_FILE).is_file():
        return directory / DEEPSPEED_FILE, "deepspeed"
    return directory / TORCH_FILE, "torch"


def is_authors_checkpoint(directory: Path) -> bool:
    directory = tag_directory(directory) if (directory / "latest").is_file() else directory
    return any((directory / name).is_file() for name in (DEEPSPEED_FILE, TORCH_FILE)) or (
        (directory / POINTER_FILE).is_file() and (directory / STATS_FILE).is_file()
    )


def read_authors(directory: Path) -> Foreign:
    directory = tag_directory(directory)
    path, kind = weights_file(directory)
    data = safe_torch_load(path)
    if not isinstance(data, dict):
        raise Evo1Error(f"expected a dict, got {type(data).__name__}", path=path)
    key = "module" if kind == "deepspeed" else "model_state_dict"
    module = data.get(key)
    if not isinstance(module, dict) or not module:
        raise Evo1Error(f"no state dict under {key!r}", path=path)
    if all(k.startswith("module.") for k in module):  # saved from a DDP-wrapped model
        module = {k[len("module.") :]: v for k, v in module.items()}
    if any(isinstance(v, torch.Tensor) and v.numel() == 0 for v in module.values()):
        raise Evo1Error("holds empty tensors (ZeRO-3 partitioned? consolidate it with zero_to_fp32.py)", path=path)

    config_path = directory / CONFIG_FILE
    if config_path.is_file():
        args = read_json(config_path)
    else:
        args = data.get("config")
        config_path = path
    if not isinstance(args, dict):
        raise Evo1Error("no training arguments (config.json, or `config` in the checkpoint)", path=config_path)

    stats_path = directory / STATS_FILE
    if stats_path.is_file():
        stats = StatsTable.load(stats_path)
    elif isinstance(data.get("norm_stats"), dict):
        stats = StatsTable.from_dict(data["norm_stats"], path)
    else:
        raise Evo1Error("file not found (and the checkpoint holds no norm_stats)", path=stats_path)

    weights = to_evo1_weights(module, path)
    config, notes = _config(args, weights, config_path, path)
    described = "the authors' DeepSpeed model states" if kind == "deepspeed" else "the authors' checkpoint.pt"
    return Foreign(described, config, stats, weights, backbone=None, notes=notes)


def _config(
    args: dict[str, Any], weights: dict[str, torch.Tensor], config_path: Path, weights_path: Path
) -> tuple[Evo1Config, list[str]]:
    dims = weight_dims(weights, weights_path)
    notes = []
    names = {"embed_dim": "embed_dim", "horizon": "horizon", "action_dim": "per_action_dim", "state_dim": "state_dim",
             "image_size": "image_size", "num_layers": "num_layers", "hidden_dim": "hidden_dim"}  # fmt: skip
    for ours, theirs in names.items():
        if isinstance(args.get(theirs), int) and args[theirs] != dims[ours]:
            notes.append(f"config.json says {theirs} {args[theirs]}, the weights have {dims[ours]}: used the weights'")
    heads = args.get("num_heads", 8)  # not visible in the shapes; 8 is their default
    if not isinstance(heads, int) or heads < 1 or dims["embed_dim"] % heads:
        raise Evo1Error(
            f"{heads!r} heads do not divide embed_dim {dims['embed_dim']}", path=config_path, field="num_heads"
        )
    main_branch = "num_inference_timesteps" not in args  # the Nov-2025 releases' argparse dump lacks it
    steps, scale = (32, 1000) if main_branch else (50, 999)
    dropout = args.get("dropout", 0.0)
    config = Evo1Config(
        backbone="internvl3-1b",
        num_views=AUTHORS_VIEWS,
        num_heads=heads,
        dropout=float(dropout) if isinstance(dropout, int | float) and 0 <= dropout < 1 else 0.0,
        num_inference_steps=steps,
        time_index_scale=scale,
        normalization="bounds",  # their server always normalises with bounds, clamped
        **dims,
    )
    branch = "release `main` (Nov 2025)" if main_branch else "the later `evo1-flash` branch"
    notes.insert(0, f"conventions of {branch}: {steps} Euler steps, time index floor(t * {scale})")
    if "num_heads" not in args:
        notes.append("config.json does not give num_heads: assumed the authors' default 8")
    return config, notes


# ---------------------------------------------------------------------------------------------- writing
def authors_config(config: Evo1Config) -> dict[str, Any]:
    """Their argparse fields for `config` (the ones their model and server read)."""
    args: dict[str, Any] = {
        "vlm_name": REMOTE_BACKBONE,
        "action_head": "flowmatching",
        "return_cls_only": False,
        "image_size": config.image_size,
        "horizon": config.horizon,
        "per_action_dim": config.action_dim,
        "state_dim": config.state_dim,
        "action_dim": config.horizon * config.action_dim,
        "num_layers": config.num_layers,
        "dropout": config.dropout,
        "embed_dim": config.embed_dim,
        "hidden_dim": config.hidden_dim,
        "state_hidden_dim": config.state_hidden_dim,
        "num_heads": config.num_heads,
        "finetune_vlm": False,
        "finetune_action_head": False,
    }
    if config.time_index_scale == 999:  # the later branch's EvoConfig carries the step count
        args["num_inference_timesteps"] = config.num_inference_steps
    return args


def authors_stats(stats: StatsTable) -> dict[str, Any]:
    """Their per-arm form when every dataset is evo1's "default" (as an import names it), else per arm and dataset."""
    nested = stats.to_dict()
    if all(d == DEFAULT_DATASET for _, d in stats):
        return {arm: datasets[DEFAULT_DATASET] for arm, datasets in nested.items()}
    return nested


def limitations(config: Evo1Config, stats: StatsTable, arch: Any) -> list[str]:
    """What the authors' code cannot express of this checkpoint, one line each."""
    out = []
    server_steps = 32 if config.time_index_scale == 1000 else 50
    if config.num_inference_steps != server_steps:
        out.append(
            f"their server samples with {server_steps} Euler steps; this checkpoint uses {config.num_inference_steps}"
        )
    if config.llm_layers != AUTHORS_LLM_LAYERS:
        out.append(f"their embedder keeps {AUTHORS_LLM_LAYERS} LLM layers; this checkpoint has {config.llm_layers}")
    if config.num_views != AUTHORS_VIEWS:
        out.append(f"their prompt always has {AUTHORS_VIEWS} view slots; this checkpoint has {config.num_views}")
    if config.normalization != "bounds" or not config.normalization_clamp:
        mode = config.normalization + ("" if config.normalization_clamp else " without clipping")
        out.append(f"their server normalises with bounds, clipped to [-1, 1]; this checkpoint uses {mode}")
    if config.relative_actions:
        out.append("this checkpoint predicts actions relative to the state: their clients must add the state back")
    text, vision = arch.text_config, arch.vision_config
    if (text.hidden_size, text.vocab_size, vision.hidden_size, vision.num_hidden_layers) != (896, 151674, 1024, 24):
        out.append(f"their code builds the InternVL3-1B backbone; this one differs (LLM width {text.hidden_size})")
    if config.time_index_scale == 1000 and any(d != DEFAULT_DATASET for _, d in stats):
        out.append("their `main` server reads only per-arm stats; these are per arm and dataset")
    return out


def write_authors(state: dict[str, torch.Tensor], config: Evo1Config, stats: StatsTable, out: Path) -> None:
    torch.save({"module": to_authors_weights(state)}, out / DEEPSPEED_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(authors_config(config), indent=2) + "\n")
    (out / STATS_FILE).write_text(json.dumps(authors_stats(stats), indent=2) + "\n")
    pointer = {"type": "ds_model", "version": 0.0, "checkpoints": DEEPSPEED_FILE}
    (out / POINTER_FILE).write_text(json.dumps(pointer, indent=2) + "\n")


class AuthorsFormat(CheckpointFormat):
    name = "authors"
    title = "the authors' release"
    writable = True

    def detect(self, directory: Path) -> bool:
        return is_authors_checkpoint(directory)

    def read(self, directory: Path) -> Foreign:
        return read_authors(directory)

    def cannot_express(self, policy: Evo1Model, options: ExportOptions) -> list[str]:
        return limitations(policy.config, policy.stats, policy.backbone.model.config)

    def write(self, policy: Evo1Model, options: ExportOptions, staging: Path, out: Path) -> None:
        write_authors(policy.state_dict(), policy.config, policy.stats, staging)


FORMAT = AuthorsFormat()
