"""Relative actions (`relative_actions: true`): a chunk as offsets from the state it starts from, and back.

    to_relative(a, s) = a - s[:D]     training targets: a_{t+k} - s_t for k = 0 .. H-1   (the loader)
    to_absolute(r, s) = r + s[:D]     executable actions from the model's offsets         (`predict`)

s_t is the state at the window's first frame, the one the model sees; D is the action's native dims, and
every action dim is relative to the state's first D dims (the state must hold at least D values, in the
action's units: joint positions against joint targets, say). With `dims` = R > 0 only the first R dims are
offsets and the rest stay absolute: a gripper's command, whose measured opening stops at the object's width,
must not be an offset, or each chunk's small error is added to the last one's and the gripper drifts shut
(openpi keeps grippers absolute the same way, `make_bool_mask(6, -1)`). The authors subtract s_{t+k} from a_{t+k}
instead, which a policy cannot undo at inference (it would need the future states); subtracting the
observed s_t, as openpi's `DeltaActions` / `AbsoluteActions` pair does, makes the two maps exact inverses.

Normalisation sits outside this pair: the loader normalises the relative targets with stats computed
on relative targets (`evo1cli.data.stats`), and `predict` denormalises before adding the state back.
Both functions take numpy arrays or torch tensors of shape (..., H, D) and a state (..., S) that
broadcasts against them.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from evo1cli.errors import Evo1Error

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def relative_width(action_dims: int, dims: int) -> int:
    """R: how many of an action's `action_dims` are offsets when the config says `dims` (0: all of them)."""
    return action_dims if dims <= 0 else min(dims, action_dims)


def _state_part(actions: Array, state: Array, dims: int) -> Array:
    """(..., 1, D): the state's first R values, zeros after them."""
    d = actions.shape[-1]
    r = relative_width(d, dims)
    if state.shape[-1] < r:
        raise Evo1Error(
            f"relative actions need a state at least as long as the action's relative dims: {state.shape[-1]} "
            f"state dims, {r} relative action dims",
            field="state",
        )
    part = state[..., None, :r]
    if r == d:
        return part
    if isinstance(part, torch.Tensor):
        return torch.nn.functional.pad(part, (0, d - r))
    return np.pad(part, [(0, 0)] * (part.ndim - 1) + [(0, d - r)])


def to_relative(actions: Array, state: Array, dims: int = 0) -> Array:
    """(..., H, D) absolute actions and the (..., S) state they start from -> (..., H, D) targets: offsets in
    the first `dims` dims (every dim when 0), the rest as they were."""
    return actions - _state_part(actions, state, dims)


def to_absolute(offsets: Array, state: Array, dims: int = 0) -> Array:
    """The inverse of `to_relative`: (..., H, D) targets and the (..., S) state -> (..., H, D) actions."""
    return offsets + _state_part(offsets, state, dims)
