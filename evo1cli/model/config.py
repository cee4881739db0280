"""`Evo1Config`: every model and data dimension of an Evo-1 policy, saved as JSON and loaded back.

The defaults are the paper's full-size model (InternVL3-1B cut to 14 LLM layers, an 8-block
cross-attention action head of width 896, horizon 50, state and action padded to 24 dims).
`Evo1Config.preset("tiny")` is the small offline model that trains on a CPU.

`state_dim` and `action_dim` are the padded widths, and the one source of them: the training loader,
the stats check, `evo1 dataset pad`, the model, `predict` and the server all read these two fields (and
so must any export). 24 (`MAX_DIM`) is the default and the upper bound. They are fields, not a constant, because a
checkpoint carries its own widths (LeRobot's port keeps `max_state_dim` / `max_action_dim` in its config
the same way, and imported checkpoints bring theirs), and a single-embodiment model may use its native
width. A recipe whose datasets are wider than its model is refused by `evo1 train --check`, naming the
dataset's file and field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from evo1cli.errors import Evo1Error
from evo1cli.features import MAX_DIM  # state and action vectors are zero-padded to this many dims
from evo1cli.fileio import read_json

BACKBONES = ("internvl3-1b", "tiny")
NORMALIZATIONS = ("bounds", "bounds_q99", "normal")
ATTENTION_BACKENDS = ("sdpa", "eager")


@dataclass(frozen=True)
class Evo1Config:
    # Backbone (InternVL3 embedder).
    backbone: str = "internvl3-1b"  # architecture preset: "internvl3-1b" or "tiny"
    backbone_path: str | None = None  # hub id or local directory; None: the preset's default
    backbone_init: str = "pretrained"  # "pretrained" weights, or "random" (offline, from a seed)
    llm_layers: int = 14  # decoder layers of the LLM that are kept (the first ones)
    image_size: int = 448  # square input of the vision tower
    num_views: int = 3  # camera slots in the prompt; absent views are masked, not encoded

    # Action head (cross-modulated diffusion transformer).
    embed_dim: int = 896  # E: equals the LLM hidden size
    num_heads: int = 8
    num_layers: int = 8
    ff_dim: int = 3584
    state_hidden_dim: int = 1024
    hidden_dim: int = 1024  # hidden width of the output MLP
    dropout: float = 0.0  # attention dropout (the recipes use 0.2)
    horizon: int = 50  # H: actions per chunk
    action_dim: int = MAX_DIM  # D: the padded action width (1..24); every dataset's action must fit
    state_dim: int = MAX_DIM  # the padded state width (1..24); every dataset's state must fit

    # Flow matching.
    num_inference_steps: int = 50  # Euler steps from noise (t=0) to actions (t=1)
    time_index_scale: int = 999  # time-table index = floor(t * scale); 1000 for Nov-2025 checkpoints

    # Data and runtime.
    normalization: str = "bounds"  # "bounds" (default), "bounds_q99" or "normal"
    normalization_clamp: bool = True  # bounds modes clip to [-1, 1] (the authors do; LeRobot does not)
    relative_actions: bool = False  # targets a_{t+k} - s_t (the state's first D dims); predict adds s_t back
    relative_dims: int = 0  # with relative_actions, only the first R action dims are offsets (0: all of them);
    #                         the dims after them (a gripper) stay absolute
    attn_implementation: str = "sdpa"  # "sdpa" or "eager"; actions do not depend on it
    seed: int = 0  # seed of a randomly initialised model

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise `Evo1Error` naming the first invalid field."""

        def bad(name: str, why: str) -> Evo1Error:
            return Evo1Error(f"{why}, got {getattr(self, name)!r}", field=name)

        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type, None)
        positive = [
            "llm_layers", "image_size", "num_views", "embed_dim", "num_heads", "num_layers", "ff_dim",
            "state_hidden_dim", "hidden_dim", "horizon", "num_inference_steps",
        ]  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.backbone not in BACKBONES:
            raise bad("backbone", f"unknown backbone, expected one of {', '.join(BACKBONES)}")
        if self.backbone_init not in ("pretrained", "random"):
            raise bad("backbone_init", "must be 'pretrained' or 'random'")
        if self.backbone == "tiny" and self.backbone_init == "pretrained" and self.backbone_path is None:
            raise bad("backbone_init", "the tiny backbone has no pretrained weights; use 'random' or a backbone_path")
        for name in ("action_dim", "state_dim"):
            if not 1 <= getattr(self, name) <= MAX_DIM:
                raise bad(name, f"must be between 1 and {MAX_DIM}")
        if self.embed_dim % self.num_heads:
            raise bad("embed_dim", f"must be divisible by num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must be in [0, 1)")
        if self.time_index_scale not in (999, 1000):
            raise bad("time_index_scale", "must be 999 or 1000")
        if self.normalization not in NORMALIZATIONS:
            raise bad("normalization", f"must be one of {', '.join(NORMALIZATIONS)}")
        if self.relative_dims < 0:
            raise bad("relative_dims", "must be >= 0 (0: every action dim is relative)")
        if self.attn_implementation not in ATTENTION_BACKENDS:
            raise bad("attn_implementation", f"must be one of {', '.join(ATTENTION_BACKENDS)}")

    # ------------------------------------------------------------------ presets
    @staticmethod
    def preset(name: str, **overrides: Any) -> Evo1Config:
        """The full-size paper model (`internvl3-1b`) or the small offline one (`tiny`)."""
        if name not in _PRESETS:
            raise Evo1Error(f"unknown preset {name!r}, expected one of {', '.join(_PRESETS)}")
        return dataclasses.replace(_PRESETS[name], **overrides)

    def replace(self, **changes: Any) -> Evo1Config:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Evo1Config:
        if not isinstance(data, dict):
            raise Evo1Error(f"expected a JSON object, got {type(data).__name__}", path=path)
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise Evo1Error("unknown key", path=path, field=str(key))
        values = dict(data)
        for f in fields(cls):
            if f.name in values:
                _check_type(f.name, values[f.name], f.type, path)
        try:
            return cls(**values)
        except Evo1Error as err:
            raise err if path is None else err.at(path) from None

    @classmethod
    def load(cls, path: str | Path) -> Evo1Config:
        return cls.from_dict(read_json(path), path)


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "str | None": (str, type(None)),
    "bool": (bool,),
}


def _check_type(name: str, value: Any, annotation: Any, path: str | Path | None) -> None:
    allowed = _TYPES[str(annotation)]
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        expected = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise Evo1Error(f"must be {expected}, got {value!r}", path=path, field=name)


_PRESETS = {
    "internvl3-1b": Evo1Config(),
    "tiny": Evo1Config(
        backbone="tiny",
        backbone_init="random",
        llm_layers=2,
        image_size=112,
        embed_dim=128,
        num_heads=4,
        num_layers=4,
        ff_dim=512,
        state_hidden_dim=256,
        hidden_dim=256,
    ),
}
