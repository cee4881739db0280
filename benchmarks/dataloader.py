"""Training-window throughput: random-access decoding vs decoding each frame from the start of its video.

Dataset: Meta-World reach-v3 collected by `evo1 collect` with 2 cameras (corner2, corner3) at 448x448 and
fixed 300-frame episodes (AV1, a keyframe every 2 frames, as LeRobot writes). Windows: H = 50, both views,
448 px (no resize), training augmentation on. Both variants use the same WindowDataset; the baseline only
swaps the frame reader for the authors' way (open the mp4, decode from frame 0 up to the wanted one).

Floor: a window needs one frame per view. With GOP 2 that is at most 2 decoded frames per view; the
baseline decodes (t + 1) frames per view, 150 on average over a 300-frame episode, so the ideal ratio is
~100x, less the fixed per-sample costs (augmentation, container seek).

Then the question that matters for training: does a CPU step of the tiny model wait on data? Stage-1
steps (head only, batch 8, tiny at 112 px) run with a DataLoader of 2 workers, and the time the loop
spends blocked in `next(loader)` is measured over the first epoch and over later steps (by then the
workers' frame caches hold the resized frames).

Last, the two LeRobot layouts of the same data: the dataset and its `evo1 dataset convert` to the other
layout (v3.0, where the episodes share one parquet and one mp4 per camera and a frame is read at the
episode's span start + t), the same random windows from each, in interleaved rounds (no augmentation, no
frame cache: the reading alone), timed by wall clock and by the process's CPU time (on a shared machine
the wall clock mostly measures the neighbours); the ratio v3.0 / v2.1 is printed last.

    python benchmarks/dataloader.py [--dataset DIR] [--samples 200] [--baseline-samples 24]
    python benchmarks/dataloader.py --dataset DIR --layouts-only [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evo1cli.data.augment import Augmentation
from evo1cli.data.convert import convert_dataset
from evo1cli.data.format import load_meta
from evo1cli.data.loader import DataSource, WindowDataset, collate
from evo1cli.data.types import V21, V30
from evo1cli.data.video import read_frame_from_start
from evo1cli.model.config import Evo1Config
from evo1cli.model.policy import Evo1Model

CAMERAS = "corner2,corner3"


class FromStartReader:
    """The authors' decoding: every read opens the file and decodes from the first frame."""

    def read(self, path: str | Path, timestamp: float) -> np.ndarray:
        return read_frame_from_start(path, timestamp)


def collect(out: Path, episodes: int) -> None:
    command = [sys.executable, "-m", "evo1cli", "collect", "--robot", "metaworld", "--task", "reach-v3",
               "--episodes", str(episodes), "--cameras", CAMERAS, "--resolution", "448",
               "--max-steps", "300", "--full-length", "--out", str(out)]  # fmt: skip
    print(f"collecting {episodes} x 300 frames, 2 cameras at 448 px into {out} ...", flush=True)
    subprocess.run(command, check=True, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})


def samples_per_second(dataset: WindowDataset, indices: list[int]) -> float:
    dataset[indices[0]]  # open the first decoder outside the clock
    start = time.perf_counter()
    for i in indices:
        dataset[i]
    return len(indices) / (time.perf_counter() - start)


def data_wait(dataset_dir: Path, steps: int, workers: int) -> tuple[float, float, float]:
    """Tiny stage-1 training with a DataLoader of `workers` workers: (seconds per step, fraction of the
    loop spent waiting for data during the first epoch, the same over `steps` later steps)."""
    config = Evo1Config.preset("tiny")
    windows = WindowDataset.from_config([DataSource(dataset_dir, "metaworld", views=None)], config, augment=True)
    policy = Evo1Model.build(config, stats=windows.stats)
    policy.backbone.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.action_head.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(
        windows, batch_size=8, shuffle=True, collate_fn=collate, num_workers=workers, prefetch_factor=4,
        persistent_workers=True, drop_last=True,
    )  # fmt: skip

    def run(iterator: object, count: int) -> tuple[float, float]:
        waited = computed = 0.0
        for _ in range(count):
            t0 = time.perf_counter()
            batch = next(iterator)  # type: ignore[call-overload]
            t1 = time.perf_counter()
            loss = policy(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            t2 = time.perf_counter()
            waited, computed = waited + t1 - t0, computed + t2 - t1
        return computed / count, waited / (waited + computed)

    first = iter(loader)
    next(first)  # worker start-up is not a per-step cost
    _, first_epoch = run(first, len(loader) - 1)
    step, later = run(iter(loader), steps)
    return step, first_epoch, later


def layouts(root: Path, samples: int, rounds: int) -> dict[str, dict[str, float]]:
    """Windows per second on the dataset in each layout, by wall clock and by this process's CPU time (the fair
    measure on a shared machine), each the median over `rounds` interleaved rounds; and the medians of the
    per-round ratios v3.0 / v2.1."""
    version = load_meta(root).version
    other = root.parent / f"{root.name}-{V30 if version == V21 else V21}"
    if not other.exists():
        print(f"converting {root} to {other} ...", flush=True)
        convert_dataset(root, other, V30 if version == V21 else V21)
    paths = {version: root, load_meta(other).version: other}
    windows = {
        name: WindowDataset([DataSource(path, "metaworld")], horizon=50, image_size=448, cache_bytes=0)
        for name, path in paths.items()
    }
    rng = np.random.default_rng(1)
    rates: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in paths}
    for r in range(rounds):
        indices = rng.integers(0, len(windows[V21]), samples).tolist()
        for name in sorted(paths, reverse=r % 2 == 1):  # alternate which layout goes first
            dataset = windows[name]
            dataset[indices[0]]  # open the first decoder outside the clock
            wall, cpu = time.perf_counter(), time.process_time()
            for i in indices:
                dataset[i]
            rates[name]["wall"].append(samples / (time.perf_counter() - wall))
            rates[name]["cpu"].append(samples / (time.process_time() - cpu))
    out = {name: {k: float(np.median(v)) for k, v in by.items()} for name, by in rates.items()}
    out["ratio"] = {k: float(np.median(np.divide(rates[V30][k], rates[V21][k]))) for k in ("wall", "cpu")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="A dataset from an earlier run (default: collect one).")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--baseline-samples", type=int, default=24)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds of the layout comparison.")
    parser.add_argument("--layouts-only", action="store_true", help="Only compare the v2.1 and v3.0 layouts.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    root = args.dataset
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="evo1-bench-")) / "reach-2cam-300"
        collect(root, args.episodes)
    meta = load_meta(root)
    print(f"dataset: {root}: {len(meta.episodes)} episodes x {[e.length for e in meta.episodes]} frames, "
          f"cameras {meta.video_keys}, LeRobot {meta.version}")  # fmt: skip
    if not args.layouts_only:
        compare_with_baseline(root, meta.total_frames, args)
    rates = layouts(root, args.samples, args.rounds)
    for clock in ("wall", "cpu"):
        print(f"random access, no augmentation, {clock} clock, median of {args.rounds} interleaved rounds: "
              f"v2.1 {rates[V21][clock]:.1f}, v3.0 {rates[V30][clock]:.1f} samples/s")  # fmt: skip
    print(f"ratio v3.0 / v2.1 layout, training loader reading (median of per-round ratios): "
          f"{rates['ratio']['cpu']:.3f} by CPU time, {rates['ratio']['wall']:.3f} by wall clock")  # fmt: skip


def compare_with_baseline(root: Path, total_frames: int, args: argparse.Namespace) -> None:
    """Random access against decoding from the start, then the data wait of a tiny stage-1 run."""
    rng = np.random.default_rng(0)
    ours_idx = rng.integers(0, total_frames, args.samples).tolist()
    base_idx = rng.integers(0, total_frames, args.baseline_samples).tolist()
    rates = {}
    for augment in (False, True):
        for name, reader, indices in (("random access", None, ours_idx), ("from start", FromStartReader(), base_idx)):
            windows = WindowDataset(
                [DataSource(root, "metaworld")],
                horizon=50,
                image_size=448,
                augmentation=Augmentation() if augment else None,
                cache_bytes=0,  # every sample decodes: this measures the reading, not the cache
            )
            if reader is not None:
                windows.reader = reader  # type: ignore[assignment]
            rates[name, augment] = samples_per_second(windows, indices)
            label = f"{name} ({'with' if augment else 'no'} augmentation)"
            print(f"{label:40s} {rates[name, augment]:8.1f} samples/s", flush=True)
    plain = rates["random access", False] / rates["from start", False]
    print(f"ratio without augmentation (decoding alone): {plain:.1f}x")

    step, first_epoch, later = data_wait(root, args.steps, args.workers)
    print(f"tiny stage-1 CPU step (batch 8, 112 px, {args.workers} workers): {step * 1000:.0f} ms; time waiting on "
          f"data: {first_epoch:.1%} in the first epoch, {later:.1%} after it (decoded frames cached)")  # fmt: skip
    ratio = rates["random access", True] / rates["from start", True]
    print(f"ratio random access / from start, training loader (2 views, 448 px, H=50, augmentation): {ratio:.1f}x")


if __name__ == "__main__":
    main()
