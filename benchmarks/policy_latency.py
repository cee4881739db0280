"""Seconds per action chunk of the full-size policy on this CPU, against the authors' pipeline.

Full-size architecture (InternViT-300M, 14 Qwen2 layers, 122M-parameter head) with random weights
(no download), one 448x448 view, a short prompt, 50 Euler steps, in bfloat16 and float32.

- evo1:      the absent views skip the vision tower, the prompt is not padded, the head caches the
             context's keys/values once per chunk and masks padding out of cross-attention;
- reference: what the authors' code does with the same weights: 3 views of which 2 are blank all
             through the vision tower, the prompt padded to 1024 tokens, the head's context
             projections recomputed at each of the 50 steps.

Each (pipeline, dtype) runs in its own process so that peak RSS is its own. Reported: seconds per
chunk (median of the timed repeats, after a warm-up), peak RSS, and the share of vision / LLM / head;
the reference/evo1 ratio last.

    python benchmarks/policy_latency.py [--repeats 2] [--dtypes bfloat16,float32]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import torch

PROMPT = "Press a button from the top"
REFERENCE_LENGTH = 1024


class StageClock:
    """Wall time spent inside the vision tower (+ projector) and the LLM, via forward hooks."""

    def __init__(self, backbone) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        stages = {
            "vision": [backbone.model.vision_tower, backbone.model.multi_modal_projector],
            "llm": [backbone.model.language_model],
        }
        for stage, modules in stages.items():
            for module in modules:
                module.register_forward_pre_hook(lambda *_, s=stage: self._start(s))
                module.register_forward_hook(lambda *_, s=stage: self._stop(s))
        self._open: dict[str, float] = {}

    def _start(self, stage: str) -> None:
        self._open[stage] = time.perf_counter()

    def _stop(self, stage: str) -> None:
        self.seconds[stage] += time.perf_counter() - self._open.pop(stage)


def evo1_chunk(policy, obs, noise) -> None:
    policy.predict([obs], noise=noise)


@torch.no_grad()
def reference_chunk(policy, obs, noise) -> None:
    """The authors' pipeline on the same modules: 3 views encoded, 1024-token prompt, no KV cache."""
    from evo1cli.model.action_head import Masks
    from evo1cli.model.flow_matching import sample_actions
    from evo1cli.model.images import to_pixel_values

    backbone, cfg = policy.backbone, policy.config
    blank = np.zeros_like(obs.images[0])
    pixels = to_pixel_values([obs.images[0], blank, blank], backbone.image_size)
    features = backbone.encode_images(pixels.to(backbone.model.dtype))
    n = backbone.tokens_per_image
    text = "".join(f"Image-{i + 1}: <img>" + "<IMG_CONTEXT>" * n + "</img>\n" for i in range(3)) + PROMPT
    tok = backbone.tokenizer([text], padding="max_length", max_length=REFERENCE_LENGTH, add_special_tokens=False,
                             return_tensors="pt")  # fmt: skip
    ids, attention = tok["input_ids"], tok["attention_mask"].clone()
    slots = ids == backbone.image_token_id
    attention[0, slots[0].nonzero()[n:, 0]] = 0  # views 2 and 3 masked out
    embeds = backbone.model.get_input_embeddings()(ids).masked_scatter(slots[..., None], features)
    hidden = backbone.model.language_model(inputs_embeds=embeds, attention_mask=attention, use_cache=False)
    context = hidden.last_hidden_state
    masks = Masks(torch.ones(1, context.shape[1], dtype=torch.bool), torch.ones(1, cfg.action_dim, dtype=torch.bool))
    state = torch.zeros(1, cfg.state_dim)
    state[0, :8] = torch.as_tensor(obs.state)
    sample_actions(policy.action_head, context, state, masks, 50, noise=noise, cache_context=False)


def worker(pipeline: str, dtype_name: str, repeats: int) -> dict:
    from evo1cli.model.config import Evo1Config
    from evo1cli.model.normalization import NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model, Observation

    dtype = getattr(torch, dtype_name)
    stats = StatsTable()
    stats.add("metaworld", "mt50", NormStats.identity(8, 4))
    start = time.perf_counter()
    policy = Evo1Model.build(Evo1Config(backbone_init="random"), dtype, stats).eval()
    build_seconds = time.perf_counter() - start
    clock = StageClock(policy.backbone)
    rng = np.random.default_rng(0)
    obs = Observation(images=[rng.integers(0, 256, (480, 480, 3), dtype=np.uint8)], prompt=PROMPT,
                      state=rng.uniform(-1, 1, 8))  # fmt: skip
    noise = torch.rand(1, 50, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    run = evo1_chunk if pipeline == "evo1" else reference_chunk
    totals, shares = [], []
    for i in range(repeats + 1):
        clock.seconds.clear()
        start = time.perf_counter()
        run(policy, obs, noise)
        total = time.perf_counter() - start
        if i:  # the first run warms up
            totals.append(total)
            vision, llm = clock.seconds["vision"], clock.seconds["llm"]
            shares.append({"vision": vision / total, "llm": llm / total, "head": (total - vision - llm) / total})
    return {
        "pipeline": pipeline,
        "dtype": dtype_name,
        "seconds_per_chunk": statistics.median(totals),
        "all_seconds": totals,
        "build_seconds": build_seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "share": {k: statistics.mean(s[k] for s in shares) for k in ("vision", "llm", "head")},
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--worker", nargs=2, metavar=("PIPELINE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats)))
        return

    results = {}
    for dtype in args.dtypes.split(","):
        for pipeline in ("evo1", "reference"):
            cmd = [sys.executable, __file__, "--worker", pipeline, dtype, "--repeats", str(args.repeats)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = results[(pipeline, dtype)] = json.loads(out)
            s = r["share"]
            timing = f"{r['seconds_per_chunk']:6.2f} s/chunk  peak RSS {r['peak_rss_gb']:4.1f} GB"
            split = f"vision {s['vision']:4.0%}  LLM {s['llm']:4.0%}  head {s['head']:4.0%}"
            extra = f"(build {r['build_seconds']:.0f} s, {r['threads']} threads)"
            print(f"{pipeline:>9} {dtype:>8}: {timing}  {split}  {extra}", flush=True)
    for dtype in args.dtypes.split(","):
        ratio = results[("reference", dtype)]["seconds_per_chunk"] / results[("evo1", dtype)]["seconds_per_chunk"]
        print(f"reference / evo1 seconds per chunk, {dtype}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
