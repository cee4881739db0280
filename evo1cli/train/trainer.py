"""The two-stage training loop, on Hugging Face Accelerate.

    stage 1  the backbone is frozen (no gradients, eval mode, run under no_grad); the action head trains
    stage 2  everything trains, from stage 1's final weights, with a fresh optimizer and schedule

The same code runs in one process (CPU or GPU) and under `accelerate launch` on N processes (DDP).
Every random draw of step s (which windows, their augmentation, the flow-matching noise and times,
dropout) comes from generators seeded by (seed, stage, s, micro-batch, rank), so a run resumed from a
checkpoint repeats exactly what the uninterrupted run would have done.

A step whose loss or gradient norm is not finite is skipped (no update) and logged; `max_nonfinite`
of them in a row stop training with the last good state saved. Ctrl-C finishes the current step,
saves a checkpoint and stops; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from evo1cli.data.format import load_meta
from evo1cli.data.loader import WindowDataset, check_source, collate
from evo1cli.data.views import VIEWS_FILE, dataset_fingerprints
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_text
from evo1cli.model.checkpoint import load_policy
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.train.checkpoints import (
    TrainerState,
    last_checkpoint,
    load_trainer_state,
    load_training_state,
    restore_rng_states,
    save_checkpoint,
)
from evo1cli.train.metrics import MetricsLog
from evo1cli.train.optim import build_optimizer
from evo1cli.train.recipe import Recipe
from evo1cli.train.sampler import DROPOUT, NOISE, StepBatchSampler, derive_seed

RECIPE_COPY = "recipe.yaml"


@dataclass
class Event:
    """What the trainer reports to whoever displays it (the main process only)."""

    kind: str  # "start", "log", "checkpoint", "skip", "warning", "done"
    stage: int
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


@dataclass
class StageResult:
    stage: int
    checkpoint: Path
    steps: int
    skipped: int
    seconds: float
    last_loss: float | None
    interrupted: bool = False


class TrainingStopped(Evo1Error):
    """Training stopped before the end (non-finite streak); the last good state is saved."""


def stage_dir(out: Path, stage: int) -> Path:
    return out / f"stage{stage}"


def train(
    recipe: Recipe,
    stages: tuple[int, ...] = (1, 2),
    resume: bool = False,
    init: Path | None = None,
    listener: Listener | None = None,
    accelerator: Any = None,
) -> list[StageResult]:
    """Run the recipe's stages in order; returns each stage's final checkpoint."""
    from accelerate import Accelerator

    if recipe.logging.wandb:
        wandb_available(recipe)  # before anything is written
    check_datasets(recipe)
    if accelerator is None:
        # cpu=True on a machine without CUDA: N processes there then form a gloo (MULTI_CPU) group.
        accelerator = Accelerator(mixed_precision=_mixed_precision(recipe.precision), cpu=not torch.cuda.is_available())
    out = recipe.output
    if accelerator.is_main_process:
        _write_recipe_copy(recipe, out, resume, listener)
    results = []
    for stage in stages:
        start_from = init if stage == stages[0] else None
        result = Stage(recipe, stage, accelerator, listener).run(resume, start_from)
        results.append(result)
        if result.interrupted:
            break
    return results


def wandb_available(recipe: Recipe) -> None:
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise Evo1Error("wandb is not installed (pip install wandb)", path=recipe.source, field="logging.wandb")


def _mixed_precision(precision: str) -> str:
    from evo1cli.runtime.device import training_precision  # auto: bf16 only where the GPU computes it natively

    return training_precision(precision)


def _write_recipe_copy(recipe: Recipe, out: Path, resume: bool, listener: Listener | None) -> None:
    path = out / RECIPE_COPY
    if resume and path.is_file() and listener is not None:
        previous = yaml.safe_load(path.read_text())
        if previous != recipe.raw:
            listener(Event("warning", 0, {"message": f"the recipe differs from {path}; the resumed run is not exact"}))
    atomic_write_text(path, recipe.to_yaml())


def check_datasets(recipe: Recipe) -> None:
    """Every dataset of the recipe opens and fits its model (view slots, padded widths, relative actions):
    what `evo1 train --check` checks, and what training checks before it writes anything."""
    model = recipe.model
    for group in recipe.data.groups:
        check_source(
            group, model.num_views, model.state_dim, model.action_dim, model.relative_actions, model.relative_dims
        )


def view_fingerprints(recipe: Recipe) -> dict[str, Any]:
    """Per dataset (`embodiment/dataset`), the camera of each view slot and its fingerprint
    (`data.views`): what a deployment compares its cameras with."""
    out = {}
    for group in recipe.data.groups:
        meta = load_meta(group.path)
        views = list(group.views) if group.views is not None else list(meta.video_keys)
        out[f"{group.embodiment}/{group.key}"] = {"views": views, "fingerprints": dataset_fingerprints(meta, views)}
    return out


def window_dataset(recipe: Recipe, config: Evo1Config | None = None, stats: StatsTable | None = None) -> WindowDataset:
    """The recipe's training windows for a model `config` (default the recipe's); `stats` (a
    checkpoint's) are used where they have the key, the others are computed."""
    data = recipe.data
    config = config or recipe.model
    return WindowDataset.from_config(
        data.groups, config, data.augmentation, stats, data.cache_mb * 2**20, state_noise=data.state_noise
    )


@dataclass
class _Run:
    """What a stage's loop works on once it is set up."""

    policy: Evo1Model
    model: Any  # the policy as the accelerator prepared it (wrapped for DDP)
    optimizer: Any
    scheduler: Any
    trainable: list[torch.nn.Parameter]
    dataset: WindowDataset
    state: TrainerState
    log: MetricsLog | None = None  # the main process's


class _Window:
    """The finite steps since the last log line: how many, their summed loss and gradient norm (on the device)."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.norm = torch.zeros((), device=device)
        self.reset()

    def add(self, loss: torch.Tensor, norm: torch.Tensor) -> None:
        self.loss += loss
        self.norm += norm
        self.steps += 1

    def reset(self) -> None:
        self.start, self.steps = time.perf_counter(), 0
        self.loss.zero_()
        self.norm.zero_()


class Stage:
    def __init__(self, recipe: Recipe, stage: int, accelerator: Any, listener: Listener | None):
        self.recipe = recipe
        self.stage = stage
        self.settings = recipe.stage(stage)
        self.accelerator = accelerator
        self.listener = listener if accelerator.is_main_process else None
        self.dir = stage_dir(recipe.output, stage)
        self._stop_requested = False
        self._views: dict[str, Any] | None = None  # views.json of this run's checkpoints, made at the first save

    def emit(self, kind: str, **data: Any) -> None:
        if self.listener is not None:
            self.listener(Event(kind, self.stage, data))

    # ------------------------------------------------------------------ setup
    def _initial_policy(self, resume_from: Path | None, init: Path | None) -> Evo1Model:
        if resume_from is not None:
            return load_policy(resume_from)
        if self.stage == 1 and init is None:
            return Evo1Model.build(self.recipe.model)
        source = init or last_checkpoint(stage_dir(self.recipe.output, 1))
        if source is None:
            raise Evo1Error(
                "stage 2 starts from stage 1's final checkpoint and there is none: run --stage 1 first, "
                "or pass --init DIR",
                path=stage_dir(self.recipe.output, 1),
            )
        if init is None:
            done = load_trainer_state(source)
            if done.step < done.steps:
                raise Evo1Error(
                    f"stage 1 stopped at step {done.step} of {done.steps}: finish it with --resume --stage 1",
                    path=source,
                )
        return load_policy(source)

    def _loader(self, dataset: WindowDataset, start: int) -> Iterator[Any]:
        acc = self.accelerator
        sampler = StepBatchSampler(
            dataset.window_weights(),
            self.settings.batch_size,
            self.recipe.seed,
            self.stage,
            rank=acc.process_index,
            accumulation=self.settings.grad_accumulation,
            start=start,
            end=self.settings.steps,
        )
        workers = self.recipe.data.num_workers
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=acc.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
            worker_init_fn=_ignore_sigint,
        )
        return iter(loader)

    # ------------------------------------------------------------------ the stage
    def run(self, resume: bool, init: Path | None) -> StageResult:
        """Train from the start (or, with `resume`, from the last checkpoint) to the stage's last step."""
        resume_from = self._resume_point(resume)
        state = self._new_state()
        if resume_from is not None:
            saved = load_trainer_state(resume_from)
            if saved.step >= self.settings.steps:
                self.emit("done", checkpoint=str(resume_from), steps=saved.step, resumed=True)
                return StageResult(self.stage, resume_from, saved.step, saved.skipped, 0.0, None)
            self._continue_from(state, saved)
        run = self._set_up(state, resume_from, init)
        self._announce(run, resume_from)
        run.log = self._open_log(state.step)
        try:
            result = self._loop(run)
        finally:
            if run.log is not None:
                run.log.close()
        self.emit("done", checkpoint=str(result.checkpoint), steps=state.step, seconds=result.seconds,
                  interrupted=result.interrupted)  # fmt: skip
        return result

    def _resume_point(self, resume: bool) -> Path | None:
        """The checkpoint to resume from (None: a fresh start); a fresh start over checkpoints is refused."""
        last = last_checkpoint(self.dir)
        if not resume and last is not None:
            raise Evo1Error("already has checkpoints: add --resume to continue, or choose another --out", path=self.dir)
        return last if resume else None

    def _new_state(self) -> TrainerState:
        settings = self.settings
        return TrainerState(
            stage=self.stage,
            step=0,
            steps=settings.steps,
            seed=self.recipe.seed,
            world_size=self.accelerator.num_processes,
            batch_size=settings.batch_size,
            grad_accumulation=settings.grad_accumulation,
        )

    def _continue_from(self, state: TrainerState, saved: TrainerState) -> None:
        """Take over the saved counters; warn when the topology changed (the data order then differs)."""
        topology = (saved.world_size, saved.batch_size, saved.grad_accumulation)
        now = (state.world_size, state.batch_size, state.grad_accumulation)
        if topology != now:
            self.emit(
                "warning",
                message=f"resuming with (processes, batch, accumulation) = {now} instead of {topology}: "
                "the data order differs from an uninterrupted run",
            )
        state.step, state.nonfinite_streak, state.skipped = saved.step, saved.nonfinite_streak, saved.skipped

    def _set_up(self, state: TrainerState, resume_from: Path | None, init: Path | None) -> _Run:
        """The policy (stats from its data), its optimizer and schedule (restored on resume), prepared."""
        settings = self.settings
        policy = self._initial_policy(resume_from, init)
        dataset = window_dataset(self.recipe, policy.config, policy.stats if len(policy.stats) else None)
        policy.stats = dataset.stats
        policy.freeze_backbone(self.stage == 1)
        if settings.gradient_checkpointing and self.stage == 2:
            policy.backbone.enable_gradient_checkpointing()
        optimizer, scheduler = build_optimizer(policy, settings)
        if resume_from is not None:
            saved_state = load_training_state(resume_from)
            optimizer.load_state_dict(saved_state["optimizer"])
            scheduler.load_state_dict(saved_state["scheduler"])
            restore_rng_states(saved_state["rng"])
        model, optimizer = self.accelerator.prepare(policy, optimizer)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        return _Run(policy, model, optimizer, scheduler, trainable, dataset, state)

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step, over all processes."""
        return self.settings.batch_size * self.accelerator.num_processes * self.settings.grad_accumulation

    def _announce(self, run: _Run, resume_from: Path | None) -> None:
        acc, settings = self.accelerator, self.settings
        self.emit(
            "start",
            out=str(self.dir),
            steps=settings.steps,
            start_step=run.state.step,
            resumed_from=None if resume_from is None else str(resume_from),
            batch_size=settings.batch_size,
            processes=acc.num_processes,
            grad_accumulation=settings.grad_accumulation,
            effective_batch=self.effective_batch,
            trainable=sum(p.numel() for p in run.trainable),
            parameters=sum(p.numel() for p in run.policy.parameters()),
            windows=len(run.dataset),
            datasets=[f"{g.embodiment}/{g.dataset}" for g in self.recipe.data.groups],
            device=str(acc.device),
            precision="fp32" if acc.mixed_precision == "no" else acc.mixed_precision,
            distributed=str(acc.distributed_type),
        )

    def _open_log(self, step: int) -> MetricsLog | None:
        """The stage's metrics log (the main process only), continuing at `step`."""
        if not self.accelerator.is_main_process:
            return None
        logging = self.recipe.logging
        self.dir.mkdir(parents=True, exist_ok=True)
        return MetricsLog(
            self.dir, step, logging.tensorboard, logging.wandb, logging.wandb_project,
            f"{self.recipe.name}-stage{self.stage}", self.recipe.raw,
        )  # fmt: skip

    # ------------------------------------------------------------------ the loop
    def _loop(self, run: _Run) -> StageResult:
        """Steps until the last one, a Ctrl-C (checkpoint, then stop) or a non-finite streak (checkpoint, raise)."""
        settings, recipe, state = self.settings, self.recipe, run.state
        batches = self._loader(run.dataset, state.step)
        started, first_step = time.perf_counter(), state.step
        window = _Window(self.accelerator.device)
        last_loss: float | None = None
        checkpoint = None
        interrupted = False
        run.model.train()
        with self._interruptible():
            while state.step < settings.steps:
                self._advance(run, batches, window)
                if state.nonfinite_streak >= recipe.max_nonfinite:
                    checkpoint = self._save(run)
                    raise TrainingStopped(
                        f"{state.nonfinite_streak} steps in a row with a non-finite loss or gradient "
                        f"(up to step {state.step}); the last good weights are in {checkpoint}",
                        path=self.dir,
                    )
                done = state.step == settings.steps
                if window.steps and (state.step % recipe.logging.every == 0 or done):
                    rate = (state.step - first_step) / (time.perf_counter() - started)
                    last_loss = self._log(run, window, rate)
                if done or state.step % recipe.checkpoint.every == 0:
                    checkpoint = self._save(run)
                if self._stop_requested and not done:
                    if state.step % recipe.checkpoint.every:
                        checkpoint = self._save(run)
                    interrupted = True
                    break
        assert checkpoint is not None or interrupted
        return StageResult(
            self.stage, checkpoint or self.dir, state.step, state.skipped,
            time.perf_counter() - started, last_loss, interrupted,
        )  # fmt: skip

    def _advance(self, run: _Run, batches: Iterator[Any], window: _Window) -> None:
        """One optimizer step; a step whose gradient norm is not finite is skipped (no update) and logged."""
        state = run.state
        loss, norm = self._step(run.model, run.optimizer, run.trainable, batches, state.step)
        finite = bool(torch.isfinite(norm))  # the norm of all-reduced gradients: every rank agrees
        if finite:
            run.optimizer.step()
            state.nonfinite_streak = 0
            window.add(loss, norm)
        else:
            state.nonfinite_streak += 1
            state.skipped += 1
            record = {"loss": _number(loss), "grad_norm": _number(norm), "streak": state.nonfinite_streak}
            self.emit("skip", step=state.step + 1, **record)
            if run.log is not None:
                run.log.log(state.step + 1, {"event": "nonfinite", **record})
        run.optimizer.zero_grad(set_to_none=True)
        run.scheduler.step()
        state.step += 1

    def _log(self, run: _Run, window: _Window, rate: float) -> float:
        """Log the window's means (the loss averaged over processes), start a new window; returns the loss."""
        settings, state = self.settings, run.state
        mean_loss = self.accelerator.reduce(window.loss / window.steps, "mean")
        elapsed = time.perf_counter() - window.start
        values = {
            "loss": float(mean_loss),
            "lr": run.scheduler.get_last_lr()[0],
            "grad_norm": float(window.norm / window.steps),
            "samples_per_s": window.steps * self.effective_batch / max(elapsed, 1e-9),
            "skipped": state.skipped,
        }
        if run.log is not None:
            run.log.log(state.step, values)
        self.emit(
            "log", step=state.step, steps=settings.steps,
            eta_s=(settings.steps - state.step) / max(rate, 1e-9), **values,
        )  # fmt: skip
        window.reset()
        return values["loss"]

    def _save(self, run: _Run) -> Path:
        """A checkpoint of every process's (checked identical) weights, written by the main process."""
        acc = self.accelerator
        acc.wait_for_everyone()
        self._check_replicas(run.trainable)
        path = self.dir
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(run.model)
            if self._views is None:
                self._views = view_fingerprints(self.recipe)
            path = save_checkpoint(
                self.dir, unwrapped, run.state, run.optimizer.state_dict(), run.scheduler.state_dict(),
                self.recipe.checkpoint.keep, {VIEWS_FILE: self._views},
            )  # fmt: skip
            self.emit("checkpoint", path=str(path), step=run.state.step)
        acc.wait_for_everyone()
        return path

    def _step(
        self, model: Any, optimizer: Any, trainable: list[torch.nn.Parameter], batches: Iterator[Any], step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward over the step's micro-batches; returns (mean loss, gradient norm)."""
        acc, settings = self.accelerator, self.settings
        rank, seed = acc.process_index, self.recipe.seed
        total = torch.zeros((), device=acc.device)
        k = settings.grad_accumulation
        for micro in range(k):
            batch = next(batches)
            torch.manual_seed(derive_seed(seed, self.stage, step, micro, rank, DROPOUT))
            generator = torch.Generator(device=acc.device)
            generator.manual_seed(derive_seed(seed, self.stage, step, micro, rank, NOISE))
            sync = contextlib.nullcontext() if micro == k - 1 else acc.no_sync(model)
            with sync, acc.autocast():
                loss = model(batch, generator, settings.noise_draws)
            acc.backward(loss / k)
            total += loss.detach().float() / k
        max_norm = settings.grad_clip if settings.grad_clip is not None else math.inf
        norm = acc.clip_grad_norm_(trainable, max_norm)
        return total, torch.as_tensor(norm, device=acc.device).float()

    def _check_replicas(self, trainable: list[torch.nn.Parameter]) -> None:
        """Under DDP every process must hold the same weights; a checksum per process proves it."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return
        checksum = torch.stack([p.detach().double().sum() for p in trainable]).sum().reshape(1)
        sums = acc.gather(checksum)
        if not torch.all(sums == sums[0]):
            raise Evo1Error(f"the {acc.num_processes} processes hold different weights (checksums {sums.tolist()})")

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """The first Ctrl-C asks for a checkpoint after the current step; the second one stops at once."""
        try:
            previous = signal.getsignal(signal.SIGINT)
        except ValueError:  # not the main thread
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.emit("warning", message="Ctrl-C: saving a checkpoint after this step (again to stop at once)")

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _ignore_sigint(worker_id: int) -> None:
    """Ctrl-C is the main process's business: it finishes the step and saves a checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _number(x: torch.Tensor) -> float | str:
    value = float(x)
    return value if math.isfinite(value) else str(value)


def trainer_summary(result: StageResult) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
