"""Training samples per second, stage 1 and stage 2, tiny and full-size (random weights), on this machine.

One optimizer step = forward, backward, gradient clipping and AdamW on a fixed synthetic batch (one
view per sample, a short prompt, horizon 50), exactly as `evo1 train` runs it (`Evo1Model.forward`,
the recipe's optimizer groups). Stage 1 freezes the backbone (run under no_grad), stage 2 trains all.

Baseline, measured in the same run: the authors' stage-1 step on the same weights, where every
sample encodes 3 views (2 of them blank) and the prompt is padded to 1024 tokens; the ratio
reference / evo1 seconds per stage-1 step is printed last.

Each configuration runs in its own process (its own peak RSS).

    python benchmarks/train_step.py [--models tiny,full] [--repeats 2] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

BATCH = {"tiny": 32, "full": 2}
PROMPT_PAD = 1024


def reference_loss(policy, batch, generator):
    """The authors' stage-1 loss: 3 views encoded per sample, prompt padded to 1024, no key-padding mask."""
    from evo1cli.model.action_head import Masks
    from evo1cli.model.flow_matching import flow_matching_loss

    backbone = policy.backbone
    b = batch.state.shape[0]
    with torch.no_grad():
        pixels = torch.cat([batch.pixel_values, torch.zeros_like(batch.pixel_values).repeat(2, 1, 1, 1)])
        features = backbone.encode_images(pixels.to(backbone.model.dtype))  # (3B, n, E): every slot encoded
        n = backbone.tokens_per_image
        text = "".join(f"Image-{i + 1}: <img>" + "<IMG_CONTEXT>" * n + "</img>\n" for i in range(3))
        tok = backbone.tokenizer([text + p for p in batch.prompts], padding="max_length", max_length=PROMPT_PAD,
                                 add_special_tokens=False, return_tensors="pt")  # fmt: skip
        ids, attention = tok["input_ids"], tok["attention_mask"]
        order = torch.cat([torch.arange(b)[:, None], b + 2 * torch.arange(b)[:, None] + torch.arange(2)], 1)
        features = features[order.reshape(-1)].reshape(b, 3 * n, -1)
        slots = ids == backbone.image_token_id
        embeds = backbone.model.get_input_embeddings()(ids).masked_scatter(slots[..., None], features)
        context = backbone.model.language_model(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
    masks = Masks(torch.ones(b, context.shape[1], dtype=torch.bool), batch.action_mask)
    return flow_matching_loss(policy.action_head, context, batch.state, masks, batch.actions, None, generator)


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so the clock reads its end."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def worker(
    model: str,
    stage: int,
    pipeline: str,
    repeats: int,
    dtype_name: str,
    device: str = "cpu",
    batch_size: int = 0,
    gradient_checkpointing: bool = False,
) -> dict:
    """Seconds per optimizer step (median of `repeats` after one warm-up step); batch 0: `BATCH[model]`.
    `gradient_checkpointing` recomputes the backbone's activations in backward (stage 2, as the recipe option)."""
    from evo1cli.model.config import Evo1Config
    from evo1cli.model.policy import Evo1Model
    from evo1cli.smoke import synthetic_batch
    from evo1cli.train.optim import build_optimizer
    from evo1cli.train.recipe import StageSettings

    dtype = getattr(torch, dtype_name)
    size = batch_size or BATCH[model]
    config = Evo1Config.preset("tiny" if model == "tiny" else "internvl3-1b", backbone_init="random")
    policy = Evo1Model.build(config, dtype).to(device)
    policy.freeze_backbone(stage == 1)
    if gradient_checkpointing and stage == 2:
        policy.backbone.enable_gradient_checkpointing()
    policy.train()
    batch, _ = synthetic_batch(config, size)
    batch.image_mask[:, 1:] = False  # one view per sample
    batch.pixel_values = batch.pixel_values[:size]
    optimizer, _ = build_optimizer(policy, StageSettings(lr=1e-5))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    times = []
    for i in range(repeats + 1):
        generator = torch.Generator(device).manual_seed(i)
        sync(device)
        start = time.perf_counter()
        loss = policy(batch, generator) if pipeline == "evo1" else reference_loss(policy, batch, generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i:  # the first step warms up (allocations, AdamW state)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "model": model, "stage": stage, "pipeline": pipeline, "batch": size, "dtype": dtype_name,
        "seconds_per_step": seconds, "samples_per_s": size / seconds,
        "trainable": sum(p.numel() for p in trainable),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,full")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "STAGE", "PIPELINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, stage, pipeline = args.worker
        print(json.dumps(worker(model, int(stage), pipeline, args.repeats, args.dtype)))
        return

    runs = [(m, s, "evo1") for m in args.models.split(",") for s in (1, 2)]
    runs += [(m, 1, "reference") for m in args.models.split(",")]
    results = {}
    for model, stage, pipeline in runs:
        cmd = [sys.executable, __file__, "--worker", model, str(stage), pipeline, "--repeats", str(args.repeats),
               "--dtype", args.dtype]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = results[(model, stage, pipeline)] = json.loads(out)
        print(
            f"{model:>4} stage {stage} {pipeline:>9} {args.dtype}: batch {r['batch']:>2}  "
            f"{r['seconds_per_step']:7.2f} s/step  {r['samples_per_s']:7.2f} samples/s  "
            f"{r['trainable'] / 1e6:6.1f}M trainable  peak RSS {r['peak_rss_gb']:4.1f} GB  ({r['threads']} threads)",
            flush=True,
        )
    for model in args.models.split(","):
        ratio = results[(model, 1, "reference")]["seconds_per_step"] / results[(model, 1, "evo1")]["seconds_per_step"]
        print(f"{model}: reference / evo1 seconds per stage-1 step: {ratio:.2f}x")


if __name__ == "__main__":
    main()
