"""The figures a GPU machine owes docs/benchmarks.md, in one command: full-size, random weights, bfloat16.

    1. chunk latency   `LocalPolicy.infer` (images in, actions out) at batch 1 and 8, with 1 and 3 views of
                       448 px, 32 and 50 Euler steps (median of --repeats after a warm-up chunk)
    2. serving         requests/s of `evo1 serve` (loopback websocket, batching on) with 1, 4 and 16 clients
    3. training        one optimizer step of stage 1 (backbone frozen) and stage 2 (all) at batch 16
    4. memory          peak GPU memory of a stage-2 step at batch 8, with and without gradient checkpointing
    baseline           the batch-1, 1-view, 50-step chunk in float32, in the same run

It prints what it measured with the hardware name, and the bf16 speed-up over float32 last.
`--write-docs` replaces the section between the `benchmarks/gpu.py` markers in docs/benchmarks.md.

    python benchmarks/gpu.py --write-docs                   # on a CUDA machine (about 10 minutes on one GPU)
    python benchmarks/gpu.py --device cpu --preset tiny     # the same code paths in a few minutes, anywhere
    python benchmarks/gpu.py --device cpu --only-dtypes     # just the bf16 / float32 chunk (the --dtype auto case)
    python benchmarks/gpu.py --quick                        # 50-step chunks only, 1 and 4 clients (scripts/gpu-check)
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from serving import throughput  # benchmarks/serving.py
from train_step import sync, worker  # benchmarks/train_step.py

from evo1cli.client.chunks import Query
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import NormStats, StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.runtime.device import choose_placement
from evo1cli.runtime.policy import LocalPolicy

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmarks/gpu.py: begin -->", "<!-- benchmarks/gpu.py: end -->"
PRESET = {"full": "internvl3-1b", "tiny": "tiny"}


def build(preset: str, device: str, dtype: torch.dtype) -> Evo1Model:
    stats = StatsTable()
    stats.add("robot", "demo", NormStats.identity(8, 7))
    config = Evo1Config.preset(PRESET[preset], backbone_init="random")
    return Evo1Model.build(config, dtype, stats).to(device).eval()


def chunk_seconds(policy: LocalPolicy, batch: int, views: int, steps: int, repeats: int, device: str) -> float:
    rng = np.random.default_rng(0)
    size = policy.image_size
    queries = [
        Query([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(views)],
              rng.uniform(-1, 1, 8), "Pick up the cube and put it in the box", seed=0, index=i)
        for i in range(batch)
    ]  # fmt: skip
    policy.num_steps = steps
    times = []
    for i in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        policy.infer(queries)
        sync(device)
        if i:  # the first chunk warms up (allocations, kernel selection)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        name = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{name}, torch {torch.__version__}"


def peak_gb(device: str) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else float("nan")


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def dtype_ratio(device_name: str, preset: str, repeats: int) -> None:
    """The batch-1, 1-view, 50-step chunk in bfloat16 and float32, alternating, both models in memory."""
    device = choose_placement(device_name, "float32").device
    print(hardware(device), flush=True)
    policies = {name: LocalPolicy(build(preset, device, getattr(torch, name)), "robot", "demo")
                for name in ("bfloat16", "float32")}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(repeats):
        for name, policy in policies.items():
            times[name].append(chunk_seconds(policy, 1, 1, 50, 1, device))
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"float32 / bfloat16 seconds per chunk: {medians['float32'] / medians['bfloat16']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda[:N] or cpu (auto: CUDA when present).")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--preset", default="full", choices=list(PRESET))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--write-docs", action="store_true", help="Replace the GPU section of docs/benchmarks.md.")
    parser.add_argument("--only-dtypes", action="store_true", help="Only the batch-1 chunk, bf16 and float32.")
    parser.add_argument("--quick", action="store_true", help="50 Euler steps only, 1 and 4 clients (fits a loan).")
    args = parser.parse_args()
    if args.only_dtypes:
        return dtype_ratio(args.device, args.preset, args.repeats)

    placement = choose_placement(args.device, args.dtype)
    device, dtype = placement.device, placement.torch_dtype
    where = hardware(device)
    print(f"{where}; {placement.banner()}", flush=True)
    rows: list[str] = []

    reset_peak(device)
    policy = LocalPolicy(build(args.preset, device, dtype), "robot", "demo")
    latency = {}
    for batch in (1, 8):
        for views in (1, 3):
            for steps in (50,) if args.quick else (32, 50):
                seconds = chunk_seconds(policy, batch, views, steps, args.repeats, device)
                latency[batch, views, steps] = seconds
                line = (f"chunk: batch {batch}, {views} view(s), {steps} steps: {1000 * seconds:8.1f} ms "
                        f"({batch / seconds:6.1f} chunks/s)")  # fmt: skip
                print(line, flush=True)
                rows.append(f"| {batch} | {views} | {steps} | {1000 * seconds:.1f} | {batch / seconds:.1f} |")
    inference_peak = peak_gb(device)

    rates = {}
    for clients in (1, 4) if args.quick else (1, 4, 16):
        rates[clients] = throughput(policy.model, clients, batching=True)
        print(f"serve: {clients:2d} clients: {rates[clients]:7.2f} requests/s", flush=True)
    del policy

    steps_s = {}
    model = "tiny" if args.preset == "tiny" else "full"
    for stage in (1, 2):
        reset_peak(device)
        result = worker(model, stage, "evo1", max(2, args.repeats // 2), args.dtype, device, args.train_batch)
        steps_s[stage] = (result["seconds_per_step"], peak_gb(device))
        print(f"train: stage {stage}, batch {args.train_batch}: {result['seconds_per_step']:.3f} s/step "
              f"({result['samples_per_s']:.1f} samples/s, peak {steps_s[stage][1]:.1f} GB)", flush=True)  # fmt: skip

    memory = {}  # stage 2, batch 8: the figure that picks a card
    for checkpointing in (False, True):
        reset_peak(device)
        result = worker(model, 2, "evo1", 1, args.dtype, device, 8, gradient_checkpointing=checkpointing)
        memory[checkpointing] = (peak_gb(device), result["seconds_per_step"])
        state = "on" if checkpointing else "off"
        print(f"memory: stage 2, batch 8, gradient checkpointing {state}: peak {memory[checkpointing][0]:.1f} GB, "
              f"{result['seconds_per_step']:.3f} s/step", flush=True)  # fmt: skip

    fp32 = LocalPolicy(build(args.preset, device, torch.float32), "robot", "demo")
    baseline = chunk_seconds(fp32, 1, 1, 50, args.repeats, device)
    del fp32
    speedup = baseline / latency[1, 1, 50]
    print(f"float32 chunk (batch 1, 1 view, 50 steps): {1000 * baseline:.1f} ms")

    section = "\n".join([
        BEGIN,
        f"## GPU: full-size model, {args.dtype} (`benchmarks/gpu.py`)",
        "",
        f"Measured on {where} (`python benchmarks/gpu.py --write-docs`, preset {args.preset}, random weights,",
        f"448 px views, `LocalPolicy.infer` from raw images to actions; median of {args.repeats} after a warm-up).",
        "",
        "| batch | views | Euler steps | ms per chunk | chunks/s |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Peak memory for inference: {inference_peak:.1f} GB. The same chunk in float32 (batch 1, 1 view, 50 steps):",
        f"{1000 * baseline:.1f} ms: **bf16 is {speedup:.2f}x faster**.",
        "",
        "`evo1 serve` (batching on, 224 px images, 3 requests per client): "
        + ", ".join(f"{c} clients {r:.1f} requests/s" for c, r in rates.items())
        + ".",
        "",
        f"Training step at batch {args.train_batch} (one 448 px view per sample, horizon 50, AdamW): stage 1 "
        + ", stage 2 ".join(
            f"{s:.3f} s ({args.train_batch / s:.1f} samples/s, peak {gb:.1f} GB)" for s, gb in steps_s.values()
        )
        + ".",
        "",
        f"Stage 2 at batch 8 ({args.dtype} weights, AdamW; peak of `torch.cuda.max_memory_allocated`):",
        "",
        "| gradient checkpointing | peak GPU memory | s per step |",
        "|---|---|---|",
        *(f"| {'on' if on else 'off'} | {gb:.1f} GB | {s:.3f} |" for on, (gb, s) in memory.items()),
        END,
    ])  # fmt: skip
    if args.write_docs:
        if not device.startswith("cuda") or args.preset != "full":
            sys.exit("--write-docs records GPU figures: run it with CUDA and the full preset")
        text = DOCS.read_text()
        DOCS.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S))
        print(f"wrote the GPU section of {DOCS}")
    print(f"bf16 / float32 speed-up of one chunk (batch 1, 1 view, 50 steps): {speedup:.2f}x")


if __name__ == "__main__":
    main()
