"""What every checkpoint format shares: the adapter interface (`CheckpointFormat`), a foreign checkpoint read
into evo1's terms (`Foreign`), the options of an export, safe file loading and the dimensions that the weights'
shapes determine."""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evo1cli.errors import Evo1Error
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Model


@dataclass
class Foreign:
    """What an importer read: nothing is written yet."""

    format: str  # the source's format in words, e.g. "the authors' DeepSpeed model states"
    config: Evo1Config
    stats: StatsTable
    weights: dict[str, torch.Tensor]  # evo1's names
    backbone: str | None  # where the backbone's architecture and tokenizer come from (None: the default)
    notes: list[str] = field(default_factory=list)  # conventions chosen, settings not carried
    extra: dict[str, Any] = field(default_factory=dict)  # provenance kept in import.json


@dataclass(frozen=True)
class ExportOptions:
    """What an export may be told beyond the checkpoint; a format ignores what it has no place for."""

    cameras: list[str] | None = None  # camera names in view-slot order (None: unknown)
    vlm_name: str | None = None  # the VLM a LeRobot config names, instead of a vlm/ folder written beside it
    embodiment: str | None = None  # the stats key, for a format that holds one
    dataset: str | None = None


class CheckpointFormat:
    """One checkpoint format: how to recognise it, read it and (where it can be written) write it.

    The registry (`formats.FORMATS`) holds one instance of each; nothing outside the adapters branches on
    a format's name.
    """

    name: str  # how the command line names it (`--to`)
    title: str  # in words, in messages
    writable: bool = False  # whether `evo1 export` can write it

    def detect(self, directory: Path) -> bool:
        """Whether `directory` holds a checkpoint in this format (cheap: file names, at most a small JSON)."""
        raise NotImplementedError

    def read(self, directory: Path) -> Foreign:
        """The checkpoint in `directory`, in evo1's names and terms."""
        raise NotImplementedError

    def cannot_express(self, policy: Evo1Model, options: ExportOptions) -> list[str]:
        """What this format loses of `policy`, one line each; raises `Evo1Error` for what it cannot hold at all."""
        raise NotImplementedError

    def write(self, policy: Evo1Model, options: ExportOptions, staging: Path, out: Path) -> None:
        """The files of `policy` in this format into `staging`, which is renamed to `out` once complete."""
        raise NotImplementedError


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def safe_torch_load(path: Path) -> Any:
    """`torch.load` that unpickles tensors and plain containers only; anything more is refused."""
    if not path.is_file():
        raise Evo1Error("file not found", path=path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_line(err)
        raise Evo1Error(
            f"refused: unpickling it needs more than tensors and plain containers ({first})", path=path
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        first = _first_line(err)
        raise Evo1Error(f"truncated or not a torch checkpoint ({first})", path=path) from None


def _count(weights: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in weights if (m := re.match(pattern, k))}
    if found != set(range(len(found))):
        raise Evo1Error(f"layer indices {sorted(found)} are not 0..N-1 ({pattern})")
    return len(found)


def weight_dims(weights: dict[str, torch.Tensor], path: Path) -> dict[str, int]:
    """Every head and backbone dimension that the tensor shapes determine."""

    def shape(name: str) -> tuple[int, ...]:
        if name not in weights:
            raise Evo1Error(f"missing tensor {name}", path=path)
        return tuple(weights[name].shape)

    if any(re.search(r"\.(W|b)$", k) for k in weights if k.startswith("action_head.")):
        raise Evo1Error("multi-embodiment heads (num_categories > 1) are not supported", path=path)
    e = shape("action_head.norm_out.weight")[0]
    horizon = shape("action_head.action_encoder.pos_encoding.pe")[1]
    action_dim = shape("action_head.action_encoder.W1.linear.weight")[1]
    state_hidden, state_dim = shape("action_head.state_encoder.fc1.linear.weight")
    hidden = shape("action_head.mlp_head.fc1.linear.weight")[0]
    ff = shape("action_head.transformer_blocks.0.ff.0.weight")[0]
    if shape("action_head.mlp_head.fc2.linear.weight")[0] != horizon * action_dim:
        raise Evo1Error("mlp_head.fc2 does not output horizon x action_dim values", path=path)
    positions = shape("backbone.model.vision_tower.embeddings.position_embeddings")[1] - 1  # minus CLS
    patch = shape("backbone.model.vision_tower.embeddings.patch_embeddings.projection.weight")[-1]
    side = round(positions**0.5)
    if side * side != positions:
        raise Evo1Error(f"{positions} vision patches do not form a square", path=path)
    try:
        layers = _count(weights, r"action_head\.transformer_blocks\.(\d+)\.")
        llm_layers = _count(weights, r"backbone\.model\.language_model\.layers\.(\d+)\.")
    except Evo1Error as err:
        raise err.at(path) from None
    return dict(
        embed_dim=e, horizon=horizon, action_dim=action_dim, state_dim=state_dim, state_hidden_dim=state_hidden,
        hidden_dim=hidden, ff_dim=ff, num_layers=layers, llm_layers=llm_layers, image_size=side * patch,
    )  # fmt: skip
