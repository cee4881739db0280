"""Training windows from one or more datasets (LeRobot v2.1 or v3.0), for a torch DataLoader.

A window starts at every frame t of every episode (n windows for an n-frame episode):
    state       the state at t                       normalised per (embodiment, dataset), padded to the
                                                     model's state_dim
    actions     actions t .. t+H-1                   likewise (to action_dim); with relative actions the
                                                     targets a_{t+k} - s_t; steps past the episode's end
    action_is_pad  True for those steps              repeat the last action and are flagged, so the loss
                                                     skips them
    images      each configured view's frame at t    resized to the model's size (bicubic, antialiased),
                                                     augmented when training; uint8 until collation
    prompt      the frame's task

Every model-side parameter (horizon, image size, view slots, normalisation mode and clamping, padded
widths, relative actions) comes from the model's `Evo1Config` (`from_config`), the one the checkpoint
records and `predict` reads, so the two halves of each transform cannot disagree. A dataset wider than
the padded widths is refused on one line naming its file and field (`evo1cli.data.stats.fitted_dims`).

Tables are read once, up front, and normalised (a few bytes per frame); relative action targets depend
on the window's state, so they are normalised per window. Video frames are read on demand by random
access (`FrameReader`: seek to the keyframe before the frame, decode at most a GOP; in a v3.0 file shared
by many episodes, at the episode's span start + t), with the decoders kept open per worker. `collate`
turns samples into the model's `Batch`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from evo1cli.data.augment import Augmentation
from evo1cli.data.format import load_meta
from evo1cli.data.reader import read_episode
from evo1cli.data.stats import fitted_dims, norm_stats
from evo1cli.data.types import INFO_PATH, DatasetMeta
from evo1cli.data.video import FrameReader
from evo1cli.errors import Evo1Error
from evo1cli.features import ACTION, MAX_DIM, STATE
from evo1cli.model.config import Evo1Config
from evo1cli.model.images import normalize_pixels, resize_uint8
from evo1cli.model.normalization import Normalizer, NormStats, StatsTable
from evo1cli.model.policy import Batch
from evo1cli.model.relative_actions import to_relative


@dataclass(frozen=True)
class DataSource:
    """One dataset in a training mix."""

    path: Path
    embodiment: str
    dataset: str = ""  # defaults to the directory's name
    views: tuple[str | None, ...] | None = None  # camera feature per view slot (None: empty slot); default all
    weight: float = 1.0  # share of the mix (per source, not per window)
    joints: tuple[str, ...] | None = None  # the joint order the recipe expects of state and action (checked)

    @property
    def key(self) -> str:
        return self.dataset or self.path.name


@dataclass
class _Episode:
    state: torch.Tensor  # (n, state_dim) normalised, padded
    raw_state: torch.Tensor  # (n, native state dims) float64
    action: torch.Tensor  # (n, action_dim) normalised, padded; relative actions: (n, native) raw, float64
    timestamp: np.ndarray  # (n,)
    prompts: list[str]  # per frame


@dataclass
class _Source:
    spec: DataSource
    meta: DatasetMeta
    views: list[str | None]
    episodes: list[_Episode]
    norm: NormStats


class FrameCache:
    """Resized frames, least recently used first out, up to `max_bytes` (per process: per worker).

    At the tiny model's 112 px a frame is 37 KB, so a few thousand frames fit and later epochs decode
    nothing; at 448 px it mainly catches frames that neighbouring windows share.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()

    def get(self, key: tuple[str, int]) -> torch.Tensor | None:
        image = self._frames.get(key)
        if image is not None:
            self._frames.move_to_end(key)
        return image

    def put(self, key: tuple[str, int], image: torch.Tensor) -> None:
        size = image.numel()
        if size > self.max_bytes:
            return
        self._frames[key] = image
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.bytes -= self._frames.popitem(last=False)[1].numel()


def check_source(
    spec: DataSource, num_views: int, state_dim: int, action_dim: int, relative_actions: bool, relative_dims: int = 0
) -> tuple[DatasetMeta, list[str | None], dict[str, int]]:
    """A source's metadata, camera per view slot and native dims, checked against the model's view slots,
    padded widths and action representation (what `evo1 train --check` checks, without reading episodes)."""
    meta = load_meta(spec.path)
    views = list(spec.views) if spec.views is not None else list(meta.video_keys)
    if len(views) > num_views:
        raise Evo1Error(f"{len(views)} views but the model has {num_views} slots", path=spec.path, field="views")
    for view in views:
        if view is not None and view not in meta.video_keys:
            known = ", ".join(meta.video_keys) or "none"
            raise Evo1Error(f"no camera {view!r} (cameras: {known})", path=spec.path / INFO_PATH, field="views")
    if spec.joints is not None:
        check_joint_order(meta, spec.joints)
    return meta, views, fitted_dims(meta, state_dim, action_dim, relative_actions, relative_dims)


def feature_names(meta: DatasetMeta, key: str) -> list[str] | None:
    """The per-dimension names info.json gives a vector feature (a list, or LeRobot's {"motors": [...]})."""
    names = meta.info.get("features", {}).get(key, {}).get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None) if len(names) == 1 else None
    return [str(n) for n in names] if isinstance(names, list) else None


def check_joint_order(meta: DatasetMeta, joints: Sequence[str]) -> None:
    """The dataset's state and action name the recipe's joints in the recipe's order, or a one-line refusal: a
    policy trained on reordered joints would command each joint with another's values."""
    for key in (STATE, ACTION):
        names = feature_names(meta, key)
        if names is None:
            raise Evo1Error(f"{key} names no joints to check the recipe's against", path=meta.root / INFO_PATH,
                            field=f"features.{key}.names")  # fmt: skip
        if names != list(joints):
            raise Evo1Error(f"{key} is [{', '.join(names)}]; the recipe's joints are [{', '.join(joints)}]",
                            path=meta.root / INFO_PATH, field=f"features.{key}.names")  # fmt: skip


class WindowDataset(Dataset):
    """Windows of (state, H actions, views, prompt) from every frame of every source."""

    def __init__(
        self,
        sources: Sequence[DataSource],
        horizon: int,
        image_size: int,
        num_views: int = 3,
        normalization: str = "bounds",
        augmentation: Augmentation | None = None,
        stats: StatsTable | None = None,
        cache_bytes: int = 256 * 2**20,
        *,
        state_dim: int = MAX_DIM,
        action_dim: int = MAX_DIM,
        clamp: bool = True,
        relative_actions: bool = False,
        relative_dims: int = 0,
        state_noise: float = 0.0,
    ):
        if not sources:
            raise Evo1Error("at least one dataset is needed", field="datasets")
        self.horizon = horizon
        self.image_size = image_size
        self.num_views = num_views
        self.augmentation = augmentation
        self.relative_actions = relative_actions
        self.relative_dims = relative_dims
        self.state_noise = state_noise
        self.state_norm = Normalizer(normalization, state_dim, clamp)
        self.action_norm = Normalizer(normalization, action_dim, clamp)
        self.stats = StatsTable()
        self.reader = FrameReader()
        self.cache = FrameCache(cache_bytes)
        self.sources: list[_Source] = []
        index: list[np.ndarray] = []
        for s, spec in enumerate(sources):
            source = self._load(spec, stats)
            self.sources.append(source)
            for e, ep in enumerate(source.episodes):
                n = len(ep.timestamp)
                index.append(np.stack([np.full(n, s), np.full(n, e), np.arange(n)], axis=1))
        self.index = np.concatenate(index).astype(np.int64)  # (windows, 3): source, episode, frame

    @classmethod
    def from_config(
        cls,
        sources: Sequence[DataSource],
        config: Evo1Config,
        augment: bool,
        stats: StatsTable | None = None,
        cache_bytes: int = 256 * 2**20,
        state_noise: float = 0.0,
    ) -> WindowDataset:
        """The windows a model with this config trains on: every model-side parameter is the config's."""
        return cls(
            sources,
            horizon=config.horizon,
            image_size=config.image_size,
            num_views=config.num_views,
            normalization=config.normalization,
            augmentation=Augmentation() if augment else None,
            stats=stats,
            cache_bytes=cache_bytes,
            state_dim=config.state_dim,
            action_dim=config.action_dim,
            clamp=config.normalization_clamp,
            relative_actions=config.relative_actions,
            relative_dims=config.relative_dims,
            state_noise=state_noise,
        )

    def _load(self, spec: DataSource, stats: StatsTable | None) -> _Source:
        meta, views, dims = check_source(
            spec,
            self.num_views,
            self.state_norm.pad_to,
            self.action_norm.pad_to,
            self.relative_actions,
            self.relative_dims,
        )
        if stats is not None and (spec.embodiment, spec.key) in stats.entries:
            norm = stats.get(spec.embodiment, spec.key)
        else:
            norm = norm_stats(meta, self.horizon if self.relative_actions else None, self.relative_dims)
        self.stats.add(spec.embodiment, spec.key, norm)
        episodes = []
        offsets = meta.episode_offsets()
        for i in range(len(meta.episodes)):
            table = read_episode(meta, i, offset=offsets[i])
            assert table is not None  # strict reading raises instead
            state = torch.from_numpy(table.state[:, : dims[STATE]].astype(np.float64))
            action = torch.from_numpy(table.action[:, : dims[ACTION]].astype(np.float64))
            episodes.append(
                _Episode(
                    state=self.state_norm.normalize(state, norm.state),
                    raw_state=state,
                    action=action if self.relative_actions else self.action_norm.normalize(action, norm.action),
                    timestamp=table.timestamp,
                    prompts=[meta.tasks[int(t)] for t in table.task_index],
                )
            )
        return _Source(spec, meta, views, episodes, norm)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """Window `item`, or `(window, seed)`: the seed then fixes its augmentation (exact resume)."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        s, e, t = (int(v) for v in self.index[i])
        source = self.sources[s]
        ep = source.episodes[e]
        n = len(ep.timestamp)
        steps = torch.arange(t, t + self.horizon)
        action_is_pad = steps >= n
        actions = ep.action[steps.clamp(max=n - 1)]  # past the end: the last action, flagged as padding
        if self.relative_actions:  # offsets from the window's state, normalised now (absolute ones were up front)
            actions = to_relative(actions, ep.raw_state[t], self.relative_dims)
            actions = self.action_norm.normalize(actions, source.norm.action)
        images = torch.zeros(self.num_views, 3, self.image_size, self.image_size, dtype=torch.uint8)
        image_mask = torch.zeros(self.num_views, dtype=torch.bool)
        for v, view in enumerate(source.views):
            if view is None:
                continue
            image = self._view(source, view, e, t)
            images[v] = self.augmentation(image, generator) if self.augmentation else image
            image_mask[v] = True
        action_mask = torch.zeros(self.action_norm.pad_to, dtype=torch.bool)
        action_mask[: source.norm.action.dim] = True
        state = ep.state[t]
        if self.state_noise:  # on the dataset's dims only; the targets stay those of the true state
            noise = torch.randn(source.norm.state.dim, generator=generator, dtype=state.dtype) * self.state_noise
            state = torch.cat([state[: len(noise)] + noise, state[len(noise) :]])
        return {
            "images": images,  # (V, 3, S, S) uint8
            "image_mask": image_mask,  # (V,)
            "prompt": ep.prompts[t],
            "state": state,  # (state_dim,)
            "actions": actions,  # (H, action_dim)
            "action_mask": action_mask,  # (action_dim,)
            "action_is_pad": action_is_pad,  # (H,)
            "source": s,
        }

    def _view(self, source: _Source, view: str, e: int, t: int) -> torch.Tensor:
        """Frame t of a camera, resized to (3, S, S) uint8; recently used frames come from the cache."""
        path = source.meta.video_file(view, e)
        time = source.meta.episodes[e].videos[view].start + source.episodes[e].timestamp[t]
        key = (str(path), round(time * 1e6))
        image = self.cache.get(key)
        if image is not None:
            return image
        frame = self.reader.read(path, time)
        if list(frame.shape) != list(source.meta.features[view]["shape"]):
            declared = "x".join(str(v) for v in source.meta.features[view]["shape"][:2])
            raise Evo1Error(f"frames are {frame.shape[0]}x{frame.shape[1]}, info.json says {declared}", path=path)
        image = resize_uint8(torch.from_numpy(frame)[None], self.image_size)[0]
        self.cache.put(key, image)
        return image

    def window_weights(self) -> torch.Tensor:
        """Each window's probability of being drawn, so that each source gets its `weight` share."""
        counts = np.bincount(self.index[:, 0], minlength=len(self.sources))
        weights = np.array([src.spec.weight for src in self.sources]) / np.maximum(counts, 1)
        weights = weights[self.index[:, 0]]
        return torch.as_tensor(weights / weights.sum())

    def sampler(self, num_samples: int, generator: torch.Generator | None = None) -> WeightedRandomSampler:
        """Draws windows by `window_weights`, with replacement."""
        return WeightedRandomSampler(self.window_weights(), num_samples, replacement=True, generator=generator)


def collate(samples: list[dict[str, Any]]) -> Batch:
    """Samples -> a model-space `Batch` (present views only, ImageNet-normalised pixels)."""
    images = torch.stack([s["images"] for s in samples])  # (B, V, 3, S, S)
    image_mask = torch.stack([s["image_mask"] for s in samples])
    return Batch(
        pixel_values=normalize_pixels(images[image_mask]),
        image_mask=image_mask,
        prompts=[s["prompt"] for s in samples],
        state=torch.stack([s["state"] for s in samples]),
        actions=torch.stack([s["actions"] for s in samples]),
        action_mask=torch.stack([s["action_mask"] for s in samples]),
        action_is_pad=torch.stack([s["action_is_pad"] for s in samples]),
    )
