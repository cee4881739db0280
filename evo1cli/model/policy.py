"""`Evo1Model`: raw observations in, executable action chunks out.

    images (RGB uint8, any size, per view slot) --resize/normalise--> backbone --\\
    prompt ---------------------------------------------------------> backbone ---> context (B, T, E)
    state (native dims) --normalise, pad to state_dim--> state (B, state_dim) -----------------\\
                                      action head: N Euler steps from noise --> (B, H, action_dim)
                                      --denormalise, crop--> (H, native action dims) float32
                                      [--to_absolute: + state, if trained on relative actions]

Normalisation stats are looked up per (embodiment, dataset) key and travel inside the checkpoint; the
padded widths, the normalisation mode, its clamping and `relative_actions` come from the config, the
same fields the training loader read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from evo1cli.errors import Evo1Error
from evo1cli.model.action_head import ActionHead, Masks
from evo1cli.model.backbone import Evo1Backbone
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import flow_matching_loss, sample_actions
from evo1cli.model.images import ImageLike, as_image_tensor, to_pixel_values
from evo1cli.model.normalization import Normalizer, NormStats, StatsTable
from evo1cli.model.relative_actions import to_absolute


@dataclass
class Observation:
    """One raw observation.

    images: one entry per view slot (at most `num_views`), an RGB uint8 HxWx3 array or None if the
    camera is absent. state: the robot's native state vector (e.g. 8 values for Meta-World).
    """

    images: Sequence[ImageLike | None]
    prompt: str
    state: np.ndarray | Sequence[float]
    embodiment: str | None = None
    dataset: str | None = None


@dataclass
class Batch:
    """A model-space training batch (normalised, padded), as the data loader produces it."""

    pixel_values: torch.Tensor  # (N, 3, S, S) present views in (sample, view) order
    image_mask: torch.Tensor  # (B, V) bool
    prompts: list[str]
    state: torch.Tensor  # (B, state_dim)
    actions: torch.Tensor  # (B, H, action_dim)
    action_mask: torch.Tensor  # (B, action_dim) or (B, H, action_dim) bool
    action_is_pad: torch.Tensor | None = None  # (B, H) bool, steps past the episode's end


class Evo1Model(nn.Module):
    def __init__(self, config: Evo1Config, backbone: Evo1Backbone, action_head: ActionHead, stats: StatsTable):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.action_head = action_head
        self.stats = stats
        self.backbone_frozen = False
        self._state_norm = Normalizer(config.normalization, config.state_dim, config.normalization_clamp)
        self._action_norm = Normalizer(config.normalization, config.action_dim, config.normalization_clamp)

    @classmethod
    def build(
        cls, config: Evo1Config, dtype: torch.dtype = torch.float32, stats: StatsTable | None = None
    ) -> Evo1Model:
        """A new policy: the backbone per `config` (pretrained or random), a freshly seeded head."""
        backbone = Evo1Backbone.build(config, dtype)  # checks that its width is config.embed_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            head = ActionHead(config).to(dtype)
        return cls(config, backbone, head, stats or StatsTable())

    @property
    def device(self) -> torch.device:
        return self.action_head.seq_pool_proj.weight.device

    def set_attention_backend(self, name: str) -> None:
        """Switch the backbone and the head between "sdpa" and "eager" attention."""
        self.config = self.config.replace(attn_implementation=name)
        self.backbone.set_attention_backend(name)
        self.action_head.attn_implementation = name

    # ------------------------------------------------------------------ model space
    def embed(
        self, pixel_values: torch.Tensor, image_mask: torch.Tensor, prompts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone tokens (B, T, E) and their validity mask (B, T)."""
        return self.backbone(pixel_values, image_mask, prompts)

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stage 1 (frozen): no gradients, eval mode, and no activations kept for backward."""
        self.backbone_frozen = frozen
        self.backbone.requires_grad_(not frozen)
        self.backbone.train(self.training and not frozen)

    def train(self, mode: bool = True) -> Evo1Model:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()  # a frozen backbone never uses dropout
        return self

    def forward(self, batch: Batch, generator: torch.Generator | None = None, draws: int = 1) -> torch.Tensor:
        """The flow-matching loss of a normalised training batch.

        `draws` > 1 pairs each example with that many (noise, t) draws, all sharing one backbone pass
        and one projection of the context's keys and values: the head sees more of the velocity field
        per image encoded.
        """
        with torch.no_grad() if self.backbone_frozen else contextlib.nullcontext():
            context, valid = self.embed(batch.pixel_values.to(self.device), batch.image_mask, batch.prompts)
        state, actions = batch.state.to(self.device), batch.actions.to(self.device)
        action_mask = batch.action_mask.to(self.device)
        is_pad = None if batch.action_is_pad is None else batch.action_is_pad.to(self.device)
        masks, cache = Masks(context=valid, action=action_mask), None
        if draws > 1:  # context and state enter through the projections, once per example
            cache = self.action_head.prepare_context(context, state, masks).repeat_interleave(draws)
            actions, action_mask = (x.repeat_interleave(draws, dim=0) for x in (actions, action_mask))
            is_pad = None if is_pad is None else is_pad.repeat_interleave(draws, dim=0)
            masks = Masks(context=valid, action=action_mask)
        return flow_matching_loss(self.action_head, context, state, masks, actions, is_pad, generator, cache)

    # ------------------------------------------------------------------ raw observations
    @torch.no_grad()
    def predict(
        self,
        observations: Sequence[Observation],
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
    ) -> list[np.ndarray]:
        """Action chunks for a batch of raw observations: one (H, native action dims) float32 array each."""
        if not observations:
            return []
        per_sample = [self._resolve_stats(i, obs) for i, obs in enumerate(observations)]
        states = torch.zeros(len(observations), self.config.state_dim)
        action_mask = torch.zeros(len(observations), self.config.action_dim, dtype=torch.bool)
        for b, (obs, stats) in enumerate(zip(observations, per_sample, strict=True)):
            states[b] = self._state_norm.normalize(_state_vector(obs, b, stats.state.dim), stats.state)
            action_mask[b, : stats.action.dim] = True
        image_mask, images = self._present_views(observations)
        pixel_values = to_pixel_values(images, self.backbone.image_size)

        device = self.device
        context, valid = self.embed(pixel_values.to(device), image_mask, [o.prompt for o in observations])
        masks = Masks(context=valid, action=action_mask.to(device))
        chunk = sample_actions(
            self.action_head,
            context,
            states.to(device),
            masks,
            num_steps or self.config.num_inference_steps,
            noise=noise,
            generator=generator,
        ).cpu()
        chunks = [self._action_norm.denormalize(chunk[b], s.action).numpy() for b, s in enumerate(per_sample)]
        if self.config.relative_actions:  # the model predicts offsets from the current state
            for b, obs in enumerate(observations):
                try:
                    state = np.asarray(obs.state, dtype=np.float32)
                    chunks[b] = to_absolute(chunks[b], state, self.config.relative_dims)
                except Evo1Error as err:
                    raise Evo1Error(err.message, field=f"observations[{b}].state") from None
        return chunks

    def _resolve_stats(self, index: int, obs: Observation) -> NormStats:
        try:
            return self.stats.get(obs.embodiment, obs.dataset)
        except Evo1Error as err:
            raise Evo1Error(err.message, field=f"observations[{index}]") from None

    def _present_views(self, observations: Sequence[Observation]) -> tuple[torch.Tensor, list[ImageLike]]:
        v = self.config.num_views
        image_mask = torch.zeros(len(observations), v, dtype=torch.bool)
        images: list[ImageLike] = []
        for b, obs in enumerate(observations):
            if len(obs.images) > v:
                raise Evo1Error(
                    f"{len(obs.images)} images but the model has {v} view slots", field=f"observations[{b}]"
                )
            for i, img in enumerate(obs.images):
                if img is not None:
                    image_mask[b, i] = True
                    images.append(as_image_tensor(img, f"observations[{b}].images[{i}]"))
        return image_mask, images


def _state_vector(obs: Observation, index: int, dim: int) -> torch.Tensor:
    where = f"observations[{index}].state"
    try:
        x = torch.as_tensor(np.asarray(obs.state, dtype=np.float64))
    except (TypeError, ValueError):
        raise Evo1Error("expected a vector of numbers", field=where) from None
    if tuple(x.shape) != (dim,):
        raise Evo1Error(f"expected {dim} values (the stats' state dims), got shape {tuple(x.shape)}", field=where)
    if not torch.isfinite(x).all():
        raise Evo1Error("contains NaN or inf", field=where)
    return x
