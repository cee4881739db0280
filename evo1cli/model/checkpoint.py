"""Checkpoint directories: everything needed to rebuild a policy offline.

    <dir>/config.json         Evo1Config
    <dir>/model.safetensors   every weight (backbone.* and action_head.*)
    <dir>/norm_stats.json     stats per (embodiment, dataset)
    <dir>/backbone/           the backbone's architecture config and tokenizer (no weights)

Written atomically (a staging directory renamed into place). Loading checks every tensor's name
and shape before touching the model, so a truncated or mismatched file gets a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import init_empty_weights
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from evo1cli import __version__
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory
from evo1cli.model.action_head import ActionHead
from evo1cli.model.backbone import Evo1Backbone
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "norm_stats.json"
BACKBONE_DIR = "backbone"


def save_policy(policy: Evo1Model, directory: str | Path) -> Path:
    directory = Path(directory)
    with atomic_directory(directory) as staging:
        write_policy(policy, staging)
    return directory


def write_policy(policy: Evo1Model, directory: Path) -> None:
    """The checkpoint's files into an existing (staging) directory; `save_policy` makes it atomic."""
    (directory / CONFIG_FILE).write_text(policy.config.to_json())
    policy.stats.save(directory / STATS_FILE)
    policy.backbone.save_pretrained(directory / BACKBONE_DIR, weights=False)
    state = {k: v.detach().contiguous() for k, v in policy.state_dict().items()}
    save_file(state, directory / WEIGHTS_FILE, metadata={"format": "pt", "evo1cli": __version__})


def load_policy(
    directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    attn_implementation: str | None = None,
) -> Evo1Model:
    """Rebuild a policy from a checkpoint directory (no download, no random init of the weights)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise Evo1Error("not a checkpoint directory", path=directory)
    config = Evo1Config.load(directory / CONFIG_FILE)
    if attn_implementation is not None:
        config = config.replace(attn_implementation=attn_implementation)
    stats = StatsTable.load(directory / STATS_FILE)
    weights = read_weights(directory / WEIGHTS_FILE)
    policy = policy_skeleton(config, directory / BACKBONE_DIR, stats)
    check_state_dict(policy, weights, directory / WEIGHTS_FILE)
    policy.load_state_dict(weights, strict=True, assign=True)
    if dtype is not None:
        policy.to(dtype)
    return policy.to(device).eval()


def policy_skeleton(config: Evo1Config, architecture: str | Path, stats: StatsTable | None = None) -> Evo1Model:
    """The policy `config` describes, its backbone's architecture and tokenizer from `architecture` (a checkpoint's
    backbone/ folder, a model directory or a hub id), every parameter on the meta device until weights are
    assigned (`load_state_dict(..., assign=True)`): nothing is allocated or randomly initialised."""
    with init_empty_weights(include_buffers=False):
        backbone = Evo1Backbone.from_architecture(architecture, config)
        return Evo1Model(config, backbone, ActionHead(config), stats if stats is not None else StatsTable())


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise Evo1Error("file not found", path=path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise Evo1Error(f"truncated or corrupt safetensors file ({err})", path=path) from None


def check_state_dict(
    model: torch.nn.Module,
    weights: dict[str, torch.Tensor],
    path: str | Path,
    hint: str = "does config.json match these weights?",
) -> None:
    """Every tensor the model has, none it lacks, each of the model's shape: else one line naming the first."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise Evo1Error(f"missing tensor {missing[0]}{more} ({hint})", path=path)
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise Evo1Error(f"unexpected tensor {unexpected[0]}{more} ({hint})", path=path)
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            have, want = tuple(weights[key].shape), tuple(tensor.shape)
            raise Evo1Error(f"tensor {key} has shape {have}, the config expects {want} ({hint})", path=path)
