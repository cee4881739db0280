"""`scripts/gpu-check --device cpu --preset tiny`: the GPU check's rehearsal, so a lent GPU finds nothing to debug.

It runs tests/gpu on the CPU with the tiny model (the same test bodies as on CUDA) and the benchmark in its
quick form, and prints the one-screen summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_rehearses_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check"), "--device", "cpu", "--preset", "tiny",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout[result.stdout.rindex("evo1 GPU check") :]
    assert "suite      PASS" in summary and "benchmark  PASS" in summary, summary
    assert len(summary.splitlines()) <= 40  # one screen
    figures = json.loads((tmp_path / "gpu-figures.json").read_text())
    assert {f"chunk_error.{d}.{b}.batch{n}" for d in ("float32", "bfloat16") for b in ("sdpa", "eager")
            for n in (1, 8)} <= set(figures)  # fmt: skip
    assert "memory: stage 2, batch 8, gradient checkpointing on" in (tmp_path / "benchmark.txt").read_text()


def test_gpu_suite_without_cuda_is_one_skip_line():
    """Without CUDA and without a device override, `pytest tests/gpu` skips the whole suite in one line."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the suite runs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO1_GPU_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "gpu"), "-q", "-rs", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "CUDA not available" in skipped[0], result.stdout
    assert "1 skipped" in result.stdout
