"""What `evo1 info` reports: versions, device (and what `--device/--dtype auto` pick), attention backends,
threads, rendering backend."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("evo1cli", "torch", "transformers", "accelerate", "safetensors", "numpy", "av", "opencv-python")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def attention_backends() -> dict[str, bool]:
    """Attention implementations usable here (the policy's actions do not depend on the choice)."""
    import torch
    from transformers.utils import import_utils

    def check(name: str) -> bool:
        fn = getattr(import_utils, name, None)
        try:
            return bool(fn()) if fn else False
        except Exception:  # a broken optional install must not break `evo1 info`
            return False

    return {
        "eager": True,
        "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
        "flash_attention_2": check("is_flash_attn_2_available"),
        "flex_attention": check("is_torch_flex_attn_available"),
    }


def system_info() -> dict[str, Any]:
    import torch

    from evo1cli.runtime.device import choose_placement, cpu_bf16_features

    if torch.cuda.is_available():
        device = {"type": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = {"type": "mps", "name": "Apple GPU", "count": 1}
    else:
        device = {"type": "cpu", "name": platform.processor() or platform.machine(), "count": 0}
    bf16 = cpu_bf16_features()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": device,
        "cpu": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "avx512_bf16": "avx512_bf16" in bf16,
            "amx_bf16": "amx_bf16" in bf16,
            "native_bf16": list(bf16),
        },
        "auto_placement": choose_placement().banner(),  # what --device auto --dtype auto picks here
        "attention_backends": attention_backends(),
        "env": {key: os.environ.get(key) for key in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "OMP_NUM_THREADS", "HF_HOME")},
    }
