"""Benchmark throughput: Meta-World episodes per minute, evo1's harness against the authors' client loop.

Ten MT10 tasks, the tiny policy (random weights, so no episode ends early and every run does the same work:
`--episodes` per task, each `--max-steps` steps, a chunk of 15 actions per query), three ways, in one run:

- `authors`: one process, one environment at a time, a render every step (their client keeps every frame
  for its videos) and one policy query per environment (batch 1), as `mt50_evo1_client_prompt.py` does
  minus its websocket (whose JSON encoding would only widen the gap);
- `evo1 x1`: `run_benchmark` with 1 simulator worker: renders only for queries;
- `evo1 x2`: 2 workers stepping in parallel while the main process runs the policy, batched.

Rendering is Meta-World's default (shadows on) everywhere. Prints episodes per minute for each and the
ratios last.

    python benchmarks/bench_throughput.py [--episodes 1] [--max-steps 120]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from evo1cli.bench.metaworld import PROTOCOL

os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_STEPS, SEED = PROTOCOL.action_steps, PROTOCOL.seed


def tiny_policy(image_size: int):
    from evo1cli.model.config import Evo1Config
    from evo1cli.model.normalization import NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model

    stats = StatsTable()
    stats.add("metaworld", "mt10", NormStats.identity(8, 4))
    torch.manual_seed(0)
    return Evo1Model.build(Evo1Config.preset("tiny", image_size=image_size), stats=stats).eval()


def authors_loop(tasks: list[str], episodes: int, max_steps: int, policy, image_size: int) -> int:
    """The authors' client shape: render every step, query per environment; returns episodes run."""
    from evo1cli.client.chunks import Query
    from evo1cli.sim.metaworld import MetaWorldEnv, episode_variation

    done = 0
    for task in tasks:
        for k in range(episodes):
            env = MetaWorldEnv(task, SEED + k, episode_variation(SEED + k), image_size)
            try:
                obs = env.reset()
                chunk: list[np.ndarray] = []
                for step in range(max_steps):
                    image = env.image()  # every step
                    if step % ACTION_STEPS == 0:
                        query = Query([image], env.state(obs), env.prompt, seed=SEED + k, index=step // ACTION_STEPS)
                        chunk = list(policy.infer([query])[0])
                    obs, success, _ = env.step(chunk[step % ACTION_STEPS])
                    if success:
                        break
            finally:
                env.close()
            done += 1
    return done


def harness(tasks: list[str], episodes: int, max_steps: int, policy, image_size: int, workers: int) -> int:
    from evo1cli.bench.evaluate import evaluate
    from evo1cli.bench.harness import BenchProtocol

    spec = BenchProtocol("metaworld", episodes, SEED, ACTION_STEPS, image_size, 0, max_steps, None,
                   {"variations": "per-seed"})  # fmt: skip
    records, _, _ = evaluate("metaworld", tasks, spec, policy, workers)
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=1, help="episodes per task")
    parser.add_argument("--max-steps", type=int, default=120, help="steps per episode")
    args = parser.parse_args()

    from evo1cli.runtime.policy import LocalPolicy
    from evo1cli.sim.metaworld_tasks import resolve_tasks

    tasks = resolve_tasks("mt10")
    predict = LocalPolicy(tiny_policy(112))
    with torch.inference_mode():
        authors_loop(tasks[:1], 1, ACTION_STEPS, predict, 112)  # warm-up: first-call costs out of every timing
        rates: dict[str, float] = {}
        runs = {
            "authors": lambda: authors_loop(tasks, args.episodes, args.max_steps, predict, 112),
            "evo1 x1": lambda: harness(tasks, args.episodes, args.max_steps, predict, 112, 1),
            "evo1 x2": lambda: harness(tasks, args.episodes, args.max_steps, predict, 112, 2),
        }
        for name, run in runs.items():
            start = time.perf_counter()
            n = run()
            seconds = time.perf_counter() - start
            rates[name] = 60.0 * n / seconds
            print(f"{name:8s} {n} episodes x {args.max_steps} steps: {seconds:6.1f} s, {rates[name]:5.2f} episodes/min")
    print(
        f"ratios: evo1 x1 / authors {rates['evo1 x1'] / rates['authors']:.2f}x, "
        f"evo1 x2 / authors {rates['evo1 x2'] / rates['authors']:.2f}x, "
        f"evo1 x2 / x1 {rates['evo1 x2'] / rates['evo1 x1']:.2f}x"
    )


if __name__ == "__main__":
    main()
