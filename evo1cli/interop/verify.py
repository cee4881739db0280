"""The checks an evo1 checkpoint directory must pass before anyone runs it.

    config        config.json is a valid Evo1Config
    stats         norm_stats.json: at least one key, min <= max, finite, dims within the padded width,
                  the metrics the normalisation mode needs
    tensors       every tensor the config implies, none more, each of its shape, one floating dtype
    finite        no NaN or inf in any tensor
    magnitude     no tensor with |x| above a sane bound (a finite 1e37 passes `isfinite` and still
                  breaks the forward pass, as in one released checkpoint)
    forward       one synthetic observation (grey views, a prompt, the state stats' midpoint) gives
                  finite actions of the stats' action dims

Tensors are read one at a time, so verifying a large checkpoint needs little memory beyond the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from evo1cli.errors import Evo1Error
from evo1cli.interop import MAX_ABS
from evo1cli.model.checkpoint import BACKBONE_DIR, CONFIG_FILE, STATS_FILE, WEIGHTS_FILE, load_policy, policy_skeleton
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Model, Observation

SHOWN = 3  # offending tensors named per check


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checkpoint: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "problems": self.problems,
        }


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def verify_checkpoint(directory: str | Path, *, policy: Evo1Model | None = None, max_abs: float = MAX_ABS) -> Report:
    """Run every check; `policy` (the checkpoint already loaded) saves loading it again for the forward pass."""
    directory = Path(directory)
    report = Report(str(directory))
    try:
        config = Evo1Config.load(directory / CONFIG_FILE)
    except Evo1Error as err:
        report.add("config", False, str(err))
        return report
    report.add(
        "config",
        True,
        f"E={config.embed_dim}, {config.num_layers} blocks, H={config.horizon}, D={config.action_dim}, "
        f"{config.llm_layers} LLM layers, {config.image_size} px",
    )
    stats_ok = _check_stats(directory, config, report)
    tensors_ok = _check_tensors(directory, config, report, max_abs)
    if not (stats_ok and tensors_ok):
        report.add("forward", False, "skipped: fix the problems above first")
        return report
    _check_forward(directory, policy, report)
    return report


def _check_stats(directory: Path, config: Evo1Config, report: Report) -> bool:
    try:
        table = StatsTable.load(directory / STATS_FILE)
    except Evo1Error as err:
        return report.add("stats", False, str(err))
    if not len(table):
        return report.add("stats", False, f"{directory / STATS_FILE}: no stats keys")
    problems = []
    for (embodiment, dataset), stats in table.entries.items():
        key = f"{embodiment}/{dataset}"
        if stats.state.dim > config.state_dim:
            problems.append(f"{key}: state has {stats.state.dim} dims, the model {config.state_dim}")
        if stats.action.dim > config.action_dim:
            problems.append(f"{key}: action has {stats.action.dim} dims, the model {config.action_dim}")
        needed = {"bounds_q99": ("q01", "q99"), "normal": ("mean", "std")}.get(config.normalization, ())
        for feature, values in (("state", stats.state), ("action", stats.action)):
            missing = [m for m in needed if getattr(values, m) is None]
            if missing:
                problems.append(f"{key}: {feature} lacks {', '.join(missing)} ({config.normalization} needs them)")
    if problems:
        return report.add("stats", False, _listed(problems))
    keys = ", ".join(f"{e}/{d}" for e, d in table)
    return report.add("stats", True, f"{len(table)} key(s): {keys}")


def _expected_shapes(directory: Path, config: Evo1Config) -> dict[str, tuple[int, ...]]:
    skeleton = policy_skeleton(config, directory / BACKBONE_DIR)
    return {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


def _check_tensors(directory: Path, config: Evo1Config, report: Report, max_abs: float) -> bool:
    try:
        expected = _expected_shapes(directory, config)
    except Evo1Error as err:
        return report.add("tensors", False, f"cannot build the model of config.json: {err}")
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        return report.add("tensors", False, f"{path}: file not found")
    wrong: list[str] = []
    dtypes: dict[str, int] = {}
    not_finite: list[str] = []
    too_large: list[str] = []
    try:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
            wrong += [f"missing {n}" for n in missing] + [f"unexpected {n}" for n in unexpected]
            for name in sorted(names & set(expected)):
                tensor = f.get_tensor(name)
                if tuple(tensor.shape) != expected[name]:
                    wrong.append(f"{name} is {tuple(tensor.shape)}, the config implies {expected[name]}")
                dtype = str(tensor.dtype).replace("torch.", "")
                dtypes[dtype] = dtypes.get(dtype, 0) + 1
                if not tensor.is_floating_point() or not tensor.numel():
                    continue
                values = tensor.float()
                bad = int((~torch.isfinite(values)).sum())
                if bad:
                    not_finite.append(f"{name} ({bad} of {values.numel()})")
                    values = values[torch.isfinite(values)]
                peak = float(values.abs().max()) if values.numel() else 0.0
                if peak > max_abs:
                    too_large.append(f"{name} (|x| up to {peak:.3g})")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        return report.add("tensors", False, f"{path}: truncated or corrupt safetensors file ({err})")
    ok = report.add("tensors", not wrong, _listed(wrong) if wrong else f"{len(names)} tensors, names and shapes match")
    floating = [d for d in dtypes if d in ("float32", "bfloat16", "float16")]
    mixed = len(dtypes) != 1 or not floating
    counts = ", ".join(f"{n} {d}" for d, n in dtypes.items())
    ok &= report.add("dtypes", not mixed, f"{counts}" + (" (expected one floating dtype)" if mixed else ""))
    ok &= report.add("finite", not not_finite, _listed(not_finite) + " not finite" if not_finite else "no NaN or inf")
    bound = f"above {max_abs:g}"
    ok &= report.add("magnitude", not too_large, _listed(too_large) + f" {bound}" if too_large else f"none {bound}")
    return ok


def synthetic_observation(policy: Evo1Model) -> Observation:
    """Grey views in every slot, a plain prompt, the state stats' midpoint (of the first stats key)."""
    embodiment, dataset = next(iter(policy.stats))
    stats = policy.stats.get(embodiment, dataset).state
    normal = policy.config.normalization == "normal" and stats.mean is not None
    state = stats.mean if normal else (stats.min + stats.max) / 2
    size = policy.config.image_size
    views = [np.full((size, size, 3), 128, np.uint8) for _ in range(policy.config.num_views)]
    return Observation(views, "pick up the object", np.asarray(state), embodiment, dataset)


def _check_forward(directory: Path, policy: Evo1Model | None, report: Report) -> None:
    try:
        policy = policy if policy is not None else load_policy(directory)
        obs = synthetic_observation(policy)
        chunk = policy.predict([obs], generator=torch.Generator().manual_seed(0))[0]
    except (Evo1Error, RuntimeError, ValueError) as err:
        report.add("forward", False, f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
        return
    finite = bool(np.isfinite(chunk).all())
    detail = f"{chunk.shape[0]} x {chunk.shape[1]} actions, max |a| {float(np.abs(chunk).max()):.3g}"
    report.add("forward", finite, detail if finite else f"{detail}: not all finite")
