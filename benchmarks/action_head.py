"""Cached-context sampling vs recomputing the context projections every Euler step.

Full-size head (E=896, 8 blocks, H=50, D=24), batch 1, random weights, a context of 1 view
(~290 tokens) and of 3 views (~800 tokens), 50 Euler steps. Both variants run alternately in one
process (this machine is noisy); the median of the repeats is reported, the ratio at 3 views last.

    python benchmarks/action_head.py [--repeats 3] [--steps 50] [--dtype float32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from evo1cli.model.action_head import ActionHead, Masks
from evo1cli.model.config import Evo1Config
from evo1cli.model.flow_matching import sample_actions

CONTEXTS = {"1 view": 290, "3 views": 800}


def gflops_per_chunk(c: Evo1Config, tokens: int, steps: int, cached: bool) -> float:
    """Multiply-adds x 2 of one chunk. The context projections (K, V of T+1 tokens in every block)
    are the only term that caching removes from the per-step cost."""
    e, h, d, f, t = c.embed_dim, c.horizon, c.action_dim, c.ff_dim, tokens + 1
    per_block = h * e * e + 2 * h * t * e + h * e * e + 2 * h * e * f  # q, scores + values, out, FF
    per_step = h * (d * e + 2 * e * e) + c.num_layers * per_block + h * e * e + e * c.hidden_dim + c.hidden_dim * h * d
    context = c.num_layers * 2 * t * e * e + c.state_dim * c.state_hidden_dim + c.state_hidden_dim * e
    macs = steps * per_step + (1 if cached else steps) * context
    return 2 * macs / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    config = Evo1Config()
    torch.manual_seed(0)
    head = ActionHead(config).to(dtype).eval()
    print(f"full-size head: {sum(p.numel() for p in head.parameters()):,} parameters, {args.dtype}, "
          f"{torch.get_num_threads()} threads, {args.steps} Euler steps, batch 1")  # fmt: skip

    ratios = {}
    for name, tokens in CONTEXTS.items():
        context = torch.randn(1, tokens, config.embed_dim)
        masks = Masks(torch.ones(1, tokens, dtype=torch.bool), torch.ones(1, config.action_dim, dtype=torch.bool))
        state = torch.randn(1, config.state_dim)
        noise = torch.rand(1, config.horizon, config.action_dim) * 2 - 1
        times: dict[bool, list[float]] = {True: [], False: []}
        outputs = {}
        for repeat in range(args.repeats + 1):  # the first round warms up
            for cached in (True, False):
                start = time.perf_counter()
                outputs[cached] = sample_actions(
                    head, context, state, masks, args.steps, noise=noise, cache_context=cached
                )
                if repeat:
                    times[cached].append(time.perf_counter() - start)
        assert torch.allclose(outputs[True], outputs[False], atol=1e-4), "caching must not change the actions"
        fast, slow = statistics.median(times[True]), statistics.median(times[False])
        ratios[name] = slow / fast
        flops_fast = gflops_per_chunk(config, tokens, args.steps, cached=True)
        flops_slow = gflops_per_chunk(config, tokens, args.steps, cached=False)
        cached_text = f"cached {fast:6.2f} s ({flops_fast:5.0f} GFLOP, {flops_fast / fast:5.1f} GFLOP/s)"
        slow_text = f"recomputed {slow:6.2f} s ({flops_slow:5.0f} GFLOP, {flops_slow / slow:5.1f} GFLOP/s)"
        ratio_text = f"speed-up {ratios[name]:.2f}x (FLOP ratio {flops_slow / flops_fast:.2f}x)"
        print(f"{name:>8} ({tokens} tokens): {cached_text}   {slow_text}   {ratio_text}")
    print(f"speed-up of cached-context sampling at 1 view: {ratios['1 view']:.2f}x")
    print(f"speed-up of cached-context sampling at 3 views: {ratios['3 views']:.2f}x")


if __name__ == "__main__":
    main()
