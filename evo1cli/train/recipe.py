"""Training recipes: one YAML file holds everything a training run needs.

    name: metaworld
    output: runs/metaworld          # OUT: stage1/ and stage2/ go under it
    seed: 0
    precision: auto                 # auto (bf16 on a GPU, fp32 on a CPU), bf16 or fp32
    model:                          # an Evo1Config preset plus any of its fields
      preset: internvl3-1b
      dropout: 0.2                  # also: state_dim / action_dim (padded widths, 24), relative_actions, ...
    data:
      normalization: bounds         # bounds, bounds_q99 or normal (one type per model)
      augmentation: true
      num_workers: 4
      groups:                       # embodiment -> dataset -> source
        sawyer:
          mt50:
            path: data/metaworld    # relative paths are relative to the working directory
            views: [observation.images.corner2]   # camera per view slot, null for an empty slot
            weight: 1.0
            joints: [j1, j2, ...]   # optional: the state/action order expected; a dataset naming others is refused
    train:                          # defaults for both stages
      lr: 1.0e-5
      ...
    stage1: {steps: 10000}          # overrides of `train` per stage
    stage2: {steps: 65000}
    checkpoint: {every: 5000, keep: null}
    logging: {every: 10, tensorboard: true, wandb: false}
    collect: {episodes: 40}         # optional: scripted-expert demonstrations per task (`evo1 quickstart`)
    evaluation:                     # optional: what the trained policy is evaluated on (`evo1 quickstart`)
      suite: metaworld              # an `evo1 bench` suite
      tasks: mt10                   # as its --tasks takes them (a list is joined with commas)
      episodes: 10                  # per task
      variations: authors           # any other setting of the suite's protocol (seed, max_steps, fast_render, ...)

`load_recipe` checks every key, type and dataset path before anything starts; an error names the
file and the dotted key. `--set key.path=value` overrides (values parsed as YAML) go through the same
checks. The evaluation's suite and settings are checked against the suite by whoever evaluates
(evo1cli.quickstart), since training does not need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evo1cli.data.loader import DataSource
from evo1cli.errors import Evo1Error
from evo1cli.model.config import NORMALIZATIONS, Evo1Config
from evo1cli.yamlconfig import YamlReader, apply_overrides, read_yaml, show

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class StageSettings:
    """Optimisation settings of one stage (the paper's values are the defaults)."""

    steps: int = 10_000
    batch_size: int = 16  # per process
    grad_accumulation: int = 1
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-3  # not applied to biases, norms and other 1-D tensors
    warmup_steps: int = 1000  # linear warm-up, then cosine to 0 at `steps`
    grad_clip: float | None = 1.0  # max global gradient norm; null: no clipping
    noise_draws: int = 1  # flow-matching (noise, t) draws per example, sharing one backbone pass
    gradient_checkpointing: bool = False  # recompute the backbone's activations in backward (stage 2)


@dataclass(frozen=True)
class DataSettings:
    groups: tuple[DataSource, ...]  # one per (embodiment, dataset): the mix and its stats keys
    normalization: str = "bounds"
    augmentation: bool = True
    state_noise: float = 0.0  # std of Gaussian noise on each training window's normalised state (0: none)
    num_workers: int = 2
    cache_mb: int = 256  # per-worker cache of resized frames


@dataclass(frozen=True)
class CheckpointSettings:
    every: int = 5000  # steps between checkpoints (the last step is always saved)
    keep: int | None = None  # keep this many newest step checkpoints; null keeps all


@dataclass(frozen=True)
class LoggingSettings:
    every: int = 10
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "evo1"


@dataclass(frozen=True)
class CollectSettings:
    episodes: int  # scripted-expert demonstrations per task (of the evaluation's tasks)


@dataclass(frozen=True)
class Evaluation:
    """The recipe's evaluation: an `evo1 bench` suite, its tasks, and settings of its protocol by name."""

    suite: str
    tasks: str | None = None  # as `evo1 bench <suite> --tasks` takes them; None: the suite's default
    settings: dict[str, Any] = field(default_factory=dict)  # episodes, variations, seed, ... (as in the file)


@dataclass(frozen=True)
class Recipe:
    name: str
    output: Path
    model: Evo1Config
    data: DataSettings
    stage1: StageSettings
    stage2: StageSettings
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    seed: int = 0
    precision: str = "auto"
    max_nonfinite: int = 5  # consecutive non-finite steps before training stops
    collect: CollectSettings | None = None
    evaluation: Evaluation | None = None
    source: Path | None = None  # the YAML file it came from
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # as resolved, for the run's copy

    def stage(self, number: int) -> StageSettings:
        return self.stage1 if number == 1 else self.stage2

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


# ---------------------------------------------------------------------------------------------- parsing
class _Reader(YamlReader):
    """`YamlReader` plus dataclass fields checked against their annotations."""

    def value(self, value: Any, key: str, annotation: Any) -> Any:
        """`value` checked against a dataclass field's annotation (as a string)."""
        kind = str(annotation)
        optional = kind.endswith(" | None")
        if optional:
            if value is None:
                return None
            kind = kind.removesuffix(" | None")
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.error(key, f"must be true or false, got {show(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(key, f"must be an integer, got {show(value)}")
            return value
        if kind == "float":
            if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
                with contextlib.suppress(ValueError):
                    value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(key, f"must be a number, got {show(value)}")
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise self.error(key, f"must be a string, got {show(value)}")
            return value
        if kind == "tuple[float, float]":
            if not isinstance(value, list) or len(value) != 2:
                raise self.error(key, f"must be a list of two numbers, got {show(value)}")
            return tuple(self.value(v, f"{key}[{i}]", "float") for i, v in enumerate(value))
        raise AssertionError(f"no reader for {kind}")

    def dataclass(self, cls: type, data: Any, key: str, base: dict[str, Any] | None = None) -> Any:
        data = self.mapping(data, key)
        names = {f.name: f for f in fields(cls)}
        self.only(data, key, sorted(names))
        values = dict(base or {})
        for k, v in data.items():
            values[k] = self.value(v, f"{key}.{k}", names[k].type)
        return cls(**values)


def _stage(reader: _Reader, raw: dict[str, Any], name: str) -> StageSettings:
    defaults = reader.dataclass(StageSettings, raw.get("train"), "train")
    stage = reader.dataclass(StageSettings, raw.get(name), name, base=dataclasses.asdict(defaults))
    checks = [
        ("steps", stage.steps >= 1, "must be >= 1"),
        ("batch_size", stage.batch_size >= 1, "must be >= 1"),
        ("grad_accumulation", stage.grad_accumulation >= 1, "must be >= 1"),
        ("noise_draws", stage.noise_draws >= 1, "must be >= 1"),
        ("lr", stage.lr > 0, "must be > 0"),
        ("eps", stage.eps > 0, "must be > 0"),
        ("weight_decay", stage.weight_decay >= 0, "must be >= 0"),
        ("warmup_steps", 0 <= stage.warmup_steps <= stage.steps, "must be between 0 and steps"),
        ("grad_clip", stage.grad_clip is None or stage.grad_clip > 0, "must be > 0 or null"),
        ("betas", all(0 <= b < 1 for b in stage.betas), "must be two numbers in [0, 1)"),
    ]
    for key, ok, message in checks:
        if not ok:
            where = name if key in (raw.get(name) or {}) else "train"
            raise reader.error(f"{where}.{key}", f"{message}, got {getattr(stage, key)!r}")
    return stage


def _model(reader: _Reader, raw: Any) -> Evo1Config:
    data = dict(reader.mapping(raw, "model"))
    preset = data.pop("preset", "internvl3-1b")
    if not isinstance(preset, str):
        raise reader.error("model.preset", f"must be a string, got {show(preset)}")
    if "normalization" in data:
        raise reader.error("model.normalization", "set it as data.normalization")
    try:
        base = Evo1Config.preset(preset)
    except Evo1Error as err:
        raise reader.error("model.preset", err.message) from None
    merged = {**base.to_dict(), **data}
    try:
        return Evo1Config.from_dict(merged)
    except Evo1Error as err:
        raise reader.error(f"model.{err.field}" if err.field else "model", err.message) from None


def _data(reader: _Reader, raw: Any, check_paths: bool) -> DataSettings:
    data = reader.mapping(raw, "data")
    reader.only(data, "data", {"groups", "normalization", "augmentation", "state_noise", "num_workers", "cache_mb"})
    settings = {k: v for k, v in data.items() if k != "groups"}
    names = {f.name: f for f in fields(DataSettings)}
    values: dict[str, Any] = {k: reader.value(v, f"data.{k}", names[k].type) for k, v in settings.items()}
    if values.get("normalization", "bounds") not in NORMALIZATIONS:
        raise reader.error("data.normalization", f"must be one of {', '.join(NORMALIZATIONS)}")
    if values.get("state_noise", 0.0) < 0:
        raise reader.error("data.state_noise", "must be >= 0")
    if values.get("num_workers", 0) < 0:
        raise reader.error("data.num_workers", "must be >= 0")
    groups = []
    embodiments = reader.mapping(data.get("groups"), "data.groups")
    if not embodiments:
        raise reader.error("data.groups", "no datasets: add embodiment -> dataset -> {path: ...}")
    for embodiment, datasets in embodiments.items():
        datasets = reader.mapping(datasets, f"data.groups.{embodiment}")
        if not datasets:
            raise reader.error(f"data.groups.{embodiment}", "no datasets under this embodiment")
        for dataset, spec in datasets.items():
            groups.append(_group(reader, embodiment, dataset, spec, check_paths))
    return DataSettings(groups=tuple(groups), **values)


def _group(reader: _Reader, embodiment: str, dataset: str, spec: Any, check_paths: bool) -> DataSource:
    key = f"data.groups.{embodiment}.{dataset}"
    spec = reader.mapping(spec, key)
    reader.only(spec, key, {"path", "views", "weight", "joints"})
    if "path" not in spec:
        raise reader.error(f"{key}.path", "missing: the dataset's directory")
    path = Path(reader.value(spec["path"], f"{key}.path", "str")).expanduser()
    if check_paths and not path.is_dir():
        raise reader.error(f"{key}.path", f"no dataset directory at {path}")
    views = spec.get("views")
    if views is not None:
        if not isinstance(views, list) or not views or not all(v is None or isinstance(v, str) for v in views):
            raise reader.error(f"{key}.views", f"must be a list of camera keys (null for an empty slot), got {views!r}")
        views = tuple(views)
    weight = reader.value(spec.get("weight", 1.0), f"{key}.weight", "float")
    if weight <= 0:
        raise reader.error(f"{key}.weight", f"must be > 0, got {weight}")
    joints = spec.get("joints")
    if joints is not None:
        if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
            raise reader.error(f"{key}.joints", f"must be a list of joint names, got {joints!r}")
        joints = tuple(joints)
    return DataSource(path, embodiment, dataset, views, weight, joints)


def _collect(reader: _Reader, raw: Any) -> CollectSettings | None:
    if raw is None:
        return None
    data = reader.mapping(raw, "collect")
    reader.only(data, "collect", ["episodes"])
    if "episodes" not in data:
        raise reader.error("collect.episodes", "missing: demonstrations per task")
    episodes = reader.value(data["episodes"], "collect.episodes", "int")
    if episodes < 1:
        raise reader.error("collect.episodes", f"must be >= 1, got {episodes}")
    return CollectSettings(episodes)


def _evaluation(reader: _Reader, raw: Any) -> Evaluation | None:
    if raw is None:
        return None
    data = dict(reader.mapping(raw, "evaluation"))
    if "suite" not in data:
        raise reader.error("evaluation.suite", "missing: the `evo1 bench` suite to evaluate on")
    suite = reader.value(data.pop("suite"), "evaluation.suite", "str")
    tasks = data.pop("tasks", None)
    if isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
        tasks = ",".join(tasks)
    if tasks is not None and not isinstance(tasks, str):
        raise reader.error("evaluation.tasks", f"must be a string or a list of task names, got {show(tasks)}")
    if "episodes" in data and reader.value(data["episodes"], "evaluation.episodes", "int") < 1:
        raise reader.error("evaluation.episodes", f"must be >= 1, got {data['episodes']}")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise reader.error(f"evaluation.{key}", f"must be a single value, got {show(value)}")
    return Evaluation(suite, tasks, data)


TOP_LEVEL = {
    "name", "output", "seed", "precision", "max_nonfinite", "model", "data", "train", "stage1", "stage2",
    "checkpoint", "logging", "collect", "evaluation",
}  # fmt: skip


def parse_recipe(raw: Any, source: Path | None = None, check_paths: bool = True) -> Recipe:
    reader = _Reader(source)
    raw = reader.mapping(raw, "")
    reader.only(raw, "", TOP_LEVEL)
    name = reader.value(raw.get("name", source.stem if source else "run"), "name", "str")
    output = Path(reader.value(raw.get("output", f"runs/{name}"), "output", "str")).expanduser()
    precision = reader.value(raw.get("precision", "auto"), "precision", "str")
    if precision not in PRECISIONS:
        raise reader.error("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    max_nonfinite = reader.value(raw.get("max_nonfinite", 5), "max_nonfinite", "int")
    if max_nonfinite < 1:
        raise reader.error("max_nonfinite", "must be >= 1")
    data = _data(reader, raw.get("data"), check_paths)
    model = _model(reader, raw.get("model")).replace(normalization=data.normalization)
    checkpoint = reader.dataclass(CheckpointSettings, raw.get("checkpoint"), "checkpoint")
    if checkpoint.every < 1 or (checkpoint.keep is not None and checkpoint.keep < 1):
        raise reader.error("checkpoint", "every and keep must be >= 1")
    logging = reader.dataclass(LoggingSettings, raw.get("logging"), "logging")
    if logging.every < 1:
        raise reader.error("logging.every", "must be >= 1")
    return Recipe(
        name=name,
        output=output,
        model=model,
        data=data,
        stage1=_stage(reader, raw, "stage1"),
        stage2=_stage(reader, raw, "stage2"),
        checkpoint=checkpoint,
        logging=logging,
        seed=reader.value(raw.get("seed", 0), "seed", "int"),
        precision=precision,
        max_nonfinite=max_nonfinite,
        collect=_collect(reader, raw.get("collect")),
        evaluation=_evaluation(reader, raw.get("evaluation")),
        source=source,
        raw=raw,
    )


def load_recipe(path: str | Path, overrides: list[str] | None = None, check_paths: bool = True) -> Recipe:
    path = Path(path)
    raw = read_yaml(path, "recipe")
    return parse_recipe(apply_overrides(raw, overrides or [], path), path, check_paths)
