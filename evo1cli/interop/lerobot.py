"""LeRobot's Evo-1 port (`policy.type=evo1`, LeRobot 0.6): its `pretrained_model/` read and written.

    config.json                      LeRobot's Evo1Config (`type: evo1`, input/output features, head sizes)
    model.safetensors                model.embedder.model.* (native InternVL) and model.action_head.*
    policy_preprocessor.json         ... normalizer_processor -> its state file of flat `<feature>.<stat>`
    policy_postprocessor.json        unnormalizer_processor -> its state file (stats padded to max dims)
    config.json's vlm_model_name     a folder (or hub id) with the VLM's config, tokenizer and weights

The weights are a pure prefix rename. What differs in behaviour, and how an import keeps LeRobot's:
- MIN_MAX does not clip and maps a constant dim to -1 (evo1 clips and maps it to 0): an import turns
  `normalization_clamp` off; an export of a clipping checkpoint says that LeRobot will not clip.
- The time table is indexed with floor(t * 999) and the blocks' FF width is 4 x embed_dim, fixed.
- Present cameras fill the view slots from the first, in config order (evo1 keeps slots per sample).
- LeRobot loads the VLM from `vlm_model_name` and keeps its first `vlm_num_layers` LLM layers; the
  VLM config's `image_seq_length` must equal the real tokens per image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from evo1cli.errors import Evo1Error
from evo1cli.features import IMAGE_PREFIX
from evo1cli.fileio import read_json
from evo1cli.interop.foreign import CheckpointFormat, ExportOptions, Foreign, weight_dims
from evo1cli.model.checkpoint import read_weights
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import ACTION, DEFAULT_DATASET, STATE, FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR = "policy_preprocessor"
POSTPROCESSOR = "policy_postprocessor"
EPS = 1e-8
_PREFIXES = [("model.embedder.model.", "backbone.model."), ("model.action_head.", "action_head.")]
# LeRobot's Evo1Config defaults, for fields a hand-written config.json leaves out
_DEFAULTS: dict[str, Any] = {
    "chunk_size": 50, "max_state_dim": 24, "max_action_dim": 24, "max_views": 3, "image_resolution": [448, 448],
    "vlm_model_name": "OpenGVLab/InternVL3-1B-hf", "vlm_num_layers": 14, "embed_dim": 896, "hidden_dim": 1024,
    "state_hidden_dim": 1024, "num_heads": 8, "num_layers": 8, "dropout": 0.0, "num_inference_timesteps": 32,
    "num_categories": 1, "return_cls_only": False, "action_head": "flowmatching", "empty_cameras": 0,
    "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
}  # fmt: skip
# evo1 normalisation <-> LeRobot NormalizationMode (QUANTILES: the q01/q99 bounds of LeRobot >= 0.4)
_MODES = {"bounds": "MIN_MAX", "normal": "MEAN_STD", "bounds_q99": "QUANTILES"}
# LeRobot pads each stat to the max dims with these (padded zeros stay zero after MIN_MAX)
_PAD = {"min": -1.0, "max": 1.0, "mean": 0.0, "std": 1.0, "q01": -1.0, "q99": 1.0}


def is_lerobot_checkpoint(directory: Path) -> bool:
    config = directory / CONFIG_FILE
    if not (config.is_file() and (directory / WEIGHTS_FILE).is_file()):
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "type" in data and "input_features" in data


def _rename(name: str, forward: bool) -> str:
    for theirs, ours in _PREFIXES:
        src, dst = (theirs, ours) if forward else (ours, theirs)
        if name.startswith(src):
            return dst + name[len(src) :]
    raise Evo1Error(f"unexpected tensor {name} (not part of LeRobot's Evo-1 format)")


# ---------------------------------------------------------------------------------------------- reading
def read_lerobot(directory: Path) -> Foreign:
    config_path = directory / CONFIG_FILE
    raw = read_json(config_path)
    if not isinstance(raw, dict):
        raise Evo1Error("expected a JSON object", path=config_path)
    if raw.get("type") != "evo1":
        raise Evo1Error(f"a LeRobot {raw.get('type')!r} policy, not evo1", path=config_path, field="type")
    cfg = {**_DEFAULTS, **raw}
    for name, value in (("return_cls_only", False), ("num_categories", 1), ("action_head", "flowmatching")):
        if cfg[name] != value:
            raise Evo1Error(f"{cfg[name]!r} is not supported (only {value!r})", path=config_path, field=name)

    weights_path = directory / WEIGHTS_FILE
    weights = {_rename_at(k, weights_path): v for k, v in read_weights(weights_path).items()}
    dims = weight_dims(weights, weights_path)
    config = _config(cfg, dims, config_path)
    state_dim, action_dim = _native_dims(raw, config_path)
    stats = StatsTable()
    state = _stats(directory, PREPROCESSOR, "normalizer_processor", STATE, state_dim)
    action = _stats(directory, POSTPROCESSOR, "unnormalizer_processor", ACTION, action_dim)
    stats.add(DEFAULT_DATASET, DEFAULT_DATASET, NormStats(state, action))

    cameras = [  # LeRobot's placeholders for absent cameras (`empty_cameras`) are not cameras
        k for k, f in raw["input_features"].items()
        if isinstance(f, dict) and f.get("type") == "VISUAL" and not k.startswith(f"{IMAGE_PREFIX}empty_camera_")
    ]  # fmt: skip
    notes = [
        f"conventions of LeRobot: {config.num_inference_steps} Euler steps, time index floor(t * 999), "
        f"{config.normalization} normalisation without clipping",
        f"view slots in LeRobot's camera order: {', '.join(cameras) or 'none'}",
    ]
    if cfg.get("binarize_gripper"):
        notes.append("LeRobot binarised the gripper in its postprocessor; evo1 returns the raw value")
    if isinstance(cfg.get("postprocess_action_dim"), int) and cfg["postprocess_action_dim"] < action_dim:
        notes.append(f"LeRobot cropped actions to {cfg['postprocess_action_dim']} dims; evo1 returns {action_dim}")
    vlm = _vlm_source(str(cfg["vlm_model_name"]), directory)
    return Foreign("LeRobot's pretrained_model", config, stats, weights, vlm, notes, {"cameras": cameras})


def _config(cfg: dict[str, Any], dims: dict[str, int], config_path: Path) -> Evo1Config:
    """evo1's config of a LeRobot config (defaults filled in) and the dimensions its weights determine."""
    mapping = cfg["normalization_mapping"] if isinstance(cfg["normalization_mapping"], dict) else {}
    modes = {mapping.get("STATE"), mapping.get("ACTION")}
    inverse = {v: k for k, v in _MODES.items()}
    if len(modes) != 1 or next(iter(modes)) not in inverse:
        why = f"STATE and ACTION must share one of {', '.join(inverse)}, got {sorted(map(str, modes))}"
        raise Evo1Error(why, path=config_path, field="normalization_mapping")
    normalization = inverse[next(iter(modes))]
    size = cfg["image_resolution"]
    if dims["image_size"] != (size[0] if isinstance(size, list) else size):
        raise Evo1Error(f"is {size} but the vision weights are for {dims['image_size']} px", path=config_path)
    return Evo1Config(
        backbone="internvl3-1b",
        num_views=cfg["max_views"],
        num_heads=cfg["num_heads"],
        dropout=float(cfg["dropout"]),
        num_inference_steps=cfg["num_inference_timesteps"],
        time_index_scale=999,
        normalization=normalization,
        normalization_clamp=False,  # LeRobot's MIN_MAX does not clip
        **dims,
    )


def _rename_at(name: str, path: Path) -> str:
    try:
        return _rename(name, forward=True)
    except Evo1Error as err:
        raise err.at(path) from None


def _native_dims(raw: dict, path: Path) -> tuple[int, int]:
    try:
        state = int(raw["input_features"][STATE]["shape"][0])
        action = int(raw["output_features"][ACTION]["shape"][0])
    except (KeyError, TypeError, IndexError, ValueError):
        raise Evo1Error(
            "needs input_features.observation.state and output_features.action with their shapes", path=path
        ) from None
    return state, action


def _stats(directory: Path, processor: str, registry_name: str, feature: str, dim: int) -> FeatureStats:
    """One feature's stats from a processor's state file, cropped to the native dims."""
    path = directory / f"{processor}.json"
    data = read_json(path)
    steps = data.get("steps") if isinstance(data, dict) else None
    step = next((s for s in steps or [] if isinstance(s, dict) and s.get("registry_name") == registry_name), None)
    if step is None or not isinstance(step.get("state_file"), str):
        raise Evo1Error(f"no {registry_name} step with a state file", path=path)
    tensors = read_weights(directory / step["state_file"])
    values = {}
    for name in _PAD:
        key = f"{feature}.{name}"
        if key in tensors:
            if tensors[key].numel() < dim:
                raise Evo1Error(
                    f"has {tensors[key].numel()} dims, fewer than {dim}", path=directory / step["state_file"], field=key
                )
            values[name] = tensors[key].double().flatten()[:dim].tolist()
    try:
        return FeatureStats.from_dict(values, feature)
    except Evo1Error as err:
        raise err.at(directory / step["state_file"]) from None


def _vlm_source(name: str, directory: Path) -> str:
    """A relative `vlm_model_name` is looked up beside pretrained_model/ first, then in the current directory;
    anything else is a hub id."""
    for candidate in (directory / name, Path.cwd() / name, Path(name)):
        if candidate.is_dir():
            return str(candidate.resolve())
    return name


# ---------------------------------------------------------------------------------------------- writing
def limitations(config: Evo1Config, stats: NormStats) -> list[str]:
    """What LeRobot's Evo-1 cannot express of this checkpoint, one line each (it still runs there)."""
    out = []
    if config.time_index_scale != 999:
        scale = config.time_index_scale
        out.append(f"LeRobot indexes the time table with floor(t * 999); this checkpoint uses floor(t * {scale})")
    if config.normalization_clamp and config.normalization != "normal":
        out.append("LeRobot does not clip normalised states to [-1, 1]; this checkpoint does")
    constant = [
        f"{name} {np.flatnonzero(hi - lo <= EPS).tolist()}"
        for name, (lo, hi) in ((STATE, _bounds(config, stats.state)), (ACTION, _bounds(config, stats.action)))
        if (hi - lo <= EPS).any()
    ]
    if constant:
        out.append(f"constant dims ({'; '.join(constant)}) normalise to -1 in LeRobot, 0 in evo1")
    if config.relative_actions:
        out.append("this checkpoint predicts actions relative to the state; LeRobot will not add the state back")
    return out


def _bounds(config: Evo1Config, stats: FeatureStats) -> tuple[np.ndarray, np.ndarray]:
    if config.normalization == "normal":
        std = stats.std if stats.std is not None else np.ones(stats.dim)
        return np.zeros(stats.dim), std
    if config.normalization == "bounds_q99" and stats.q01 is not None and stats.q99 is not None:
        return stats.q01, stats.q99
    return stats.min, stats.max


def check_expressible(config: Evo1Config) -> None:
    """Settings that LeRobot's Evo-1 cannot load at all."""
    if config.ff_dim != 4 * config.embed_dim:
        raise Evo1Error(
            f"is {config.ff_dim}; LeRobot's Evo-1 fixes it to 4 x embed_dim = {4 * config.embed_dim}", field="ff_dim"
        )


def lerobot_config(
    config: Evo1Config, stats: NormStats, cameras: list[str], vlm_name: str, dtype: torch.dtype
) -> dict[str, Any]:
    size = [config.image_size, config.image_size]
    mode = _MODES[config.normalization]
    features = {camera: {"type": "VISUAL", "shape": [3, *size]} for camera in cameras}
    features[STATE] = {"type": "STATE", "shape": [stats.state.dim]}
    return {
        "type": "evo1",
        "n_obs_steps": 1,
        "input_features": features,
        "output_features": {ACTION: {"type": "ACTION", "shape": [stats.action.dim]}},
        "use_amp": False,
        "chunk_size": config.horizon,
        "n_action_steps": config.horizon,
        "max_state_dim": config.state_dim,
        "max_action_dim": config.action_dim,
        "max_views": config.num_views,
        "image_resolution": size,
        "empty_cameras": 0,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": mode, "ACTION": mode},
        "vlm_model_name": vlm_name,
        "vlm_num_layers": config.llm_layers,
        "vlm_dtype": str(dtype).replace("torch.", ""),
        "use_flash_attn": False,
        "action_head": "flowmatching",
        "embed_dim": config.embed_dim,
        "hidden_dim": config.hidden_dim,
        "state_hidden_dim": config.state_hidden_dim,
        "num_heads": config.num_heads,
        "num_layers": config.num_layers,
        "dropout": config.dropout,
        "num_inference_timesteps": config.num_inference_steps,
        "num_categories": 1,
        "return_cls_only": False,
    }


def _stats_tensors(stats: NormStats, config: Evo1Config) -> dict[str, torch.Tensor]:
    """Flat `<feature>.<stat>` float32 tensors, padded to the model's dims as LeRobot pads them."""
    out = {}
    for feature, values, width in ((STATE, stats.state, config.state_dim), (ACTION, stats.action, config.action_dim)):
        for name, pad in _PAD.items():
            vector = getattr(values, name)
            if vector is not None:
                padded = np.full(width, pad)
                padded[: values.dim] = vector
                out[f"{feature}.{name}"] = torch.tensor(padded, dtype=torch.float32)
    return out


def _processors(config: Evo1Config, stats: NormStats, cameras: list[str]) -> dict[str, dict[str, Any]]:
    mode = _MODES[config.normalization]
    norm_map = {"VISUAL": "IDENTITY", "STATE": mode, "ACTION": mode}
    size = [3, config.image_size, config.image_size]
    features = {camera: {"type": "VISUAL", "shape": size} for camera in cameras}
    features[STATE] = {"type": "STATE", "shape": [config.state_dim]}
    features[ACTION] = {"type": "ACTION", "shape": [config.action_dim]}
    pre = [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "evo1_pad_state_processor", "config": {"max_state_dim": config.state_dim}},
        {"registry_name": "evo1_pad_action_processor", "config": {"max_action_dim": config.action_dim}},
        {
            "registry_name": "normalizer_processor",
            "config": {"eps": EPS, "features": features, "norm_map": norm_map},
            "state_file": f"{PREPROCESSOR}_step_4_normalizer_processor.safetensors",
        },
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
    ]
    gripper = {
        "gripper_index": 6, "gripper_threshold": 0.5, "gripper_below_threshold_value": 1.0,
        "gripper_above_threshold_value": -1.0,
    }  # fmt: skip
    post = [
        {
            "registry_name": "unnormalizer_processor",
            "config": {"eps": EPS, "features": {ACTION: features[ACTION]}, "norm_map": norm_map},
            "state_file": f"{POSTPROCESSOR}_step_0_unnormalizer_processor.safetensors",
        },
        {
            "registry_name": "evo1_action_processor",
            "config": {"action_dim": stats.action.dim, "binarize_gripper": False, **gripper},
        },
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": "float32"}},
    ]
    return {PREPROCESSOR: {"name": PREPROCESSOR, "steps": pre}, POSTPROCESSOR: {"name": POSTPROCESSOR, "steps": post}}


def write_lerobot(
    state: dict[str, torch.Tensor],
    config: Evo1Config,
    stats: NormStats,
    cameras: list[str],
    vlm_name: str,
    out: Path,
) -> None:
    """config.json, model.safetensors and both processors into `out` (the VLM folder is written by the caller)."""
    weights = {_rename(k, forward=False): v.contiguous() for k, v in state.items()}
    dtype = next(iter(weights.values())).dtype
    (out / CONFIG_FILE).write_text(json.dumps(lerobot_config(config, stats, cameras, vlm_name, dtype), indent=4) + "\n")
    save_file(weights, out / WEIGHTS_FILE, metadata={"format": "pt"})
    tensors = _stats_tensors(stats, config)
    for name, processor in _processors(config, stats, cameras).items():
        (out / f"{name}.json").write_text(json.dumps(processor, indent=2) + "\n")
        for step in processor["steps"]:
            if "state_file" in step:
                save_file(tensors, out / step["state_file"])


def _cameras(config: Evo1Config, options: ExportOptions) -> tuple[list[str], str | None]:
    """The camera features to write, in view-slot order, and the warning when their names are unknown."""
    cameras, warning = options.cameras, None
    if not cameras:
        cameras = [f"{IMAGE_PREFIX}view{i + 1}" for i in range(config.num_views)]
        warning = f"camera names unknown: wrote {', '.join(cameras)} (LeRobot requires all); --cameras names them"
    cameras = [c if c.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + c for c in cameras]
    if len(cameras) > config.num_views:
        raise Evo1Error(f"{len(cameras)} cameras for {config.num_views} view slots", field="--cameras")
    return cameras, warning


class LeRobotFormat(CheckpointFormat):
    name = "lerobot"
    title = "LeRobot's pretrained_model"
    writable = True

    def detect(self, directory: Path) -> bool:
        return is_lerobot_checkpoint(directory)

    def read(self, directory: Path) -> Foreign:
        return read_lerobot(directory)

    def cannot_express(self, policy: Evo1Model, options: ExportOptions) -> list[str]:
        check_expressible(policy.config)
        out = limitations(policy.config, policy.stats.get(options.embodiment, options.dataset))
        _, warning = _cameras(policy.config, options)
        return out + ([warning] if warning else [])

    def write(self, policy: Evo1Model, options: ExportOptions, staging: Path, out: Path) -> None:
        stats = policy.stats.get(options.embodiment, options.dataset)
        cameras, _ = _cameras(policy.config, options)
        vlm = options.vlm_name or str(out.resolve() / "vlm")
        write_lerobot(policy.state_dict(), policy.config, stats, cameras, vlm, staging)
        if options.vlm_name is None:  # LeRobot loads a whole VLM (weights too) before model.safetensors overwrites it
            backbone = policy.backbone
            backbone.model.config.image_seq_length = backbone.tokens_per_image
            backbone.save_pretrained(staging / "vlm", weights=True)


FORMAT = LeRobotFormat()
