"""`--device` / `--dtype`: one decision function, tested on injected machines; every command uses it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evo1cli.errors import Evo1Error
from evo1cli.runtime.device import Hardware, choose_placement, cpu_bf16_features

H200 = Hardware(cuda=("NVIDIA H200", "NVIDIA H200"), cuda_bf16=(True, True), cpu_bf16=("amx_bf16",))
T4 = Hardware(cuda=("Tesla T4",), cuda_bf16=(False,))  # Turing: no native bf16
XEON = Hardware(cpu_bf16=("amx_bf16", "avx512_bf16"))
EPYC = Hardware()  # AVX2 only
MAC = Hardware(mps=True)

TABLE = [  # machine, --device, --dtype -> device, dtype
    (H200, "auto", "auto", "cuda:0", "bfloat16"),
    (H200, "cuda:1", "auto", "cuda:1", "bfloat16"),
    (H200, "cpu", "auto", "cpu", "bfloat16"),  # the host CPU has AMX
    (H200, "cuda", "float32", "cuda:0", "float32"),
    (T4, "auto", "auto", "cuda:0", "float32"),
    (XEON, "auto", "auto", "cpu", "bfloat16"),
    (EPYC, "auto", "auto", "cpu", "float32"),
    (EPYC, "cpu", "bfloat16", "cpu", "bfloat16"),  # as asked, with a warning in the reason
    (MAC, "auto", "auto", "mps", "float32"),
    (MAC, "cpu", "auto", "cpu", "float32"),
]


@pytest.mark.parametrize("hardware, device, dtype, want_device, want_dtype", TABLE)
def test_decision_table(hardware, device, dtype, want_device, want_dtype):
    placement = choose_placement(device, dtype, hardware)
    assert (placement.device, placement.dtype) == (want_device, want_dtype)
    assert placement.banner().startswith(f"device {want_device}, {want_dtype} (")


def test_the_banner_says_why():
    assert "the CPU has native bf16 (amx_bf16, avx512_bf16)" in choose_placement(hardware=XEON).reason
    assert "no CUDA or MPS device" in choose_placement(hardware=EPYC).reason
    assert "no native bf16" in choose_placement(hardware=EPYC).reason
    assert "NVIDIA H200" in choose_placement(hardware=H200).reason
    assert "expect it slower than float32" in choose_placement("cpu", "bfloat16", EPYC).reason
    assert choose_placement("cpu", "float32", XEON).reason == "cpu as asked; float32 as asked"


@pytest.mark.parametrize(
    "device, dtype, hardware, message",
    [
        ("cuda", "auto", EPYC, "--device: no CUDA device is visible"),
        ("cuda:2", "auto", H200, "--device: cuda:2 does not exist: 2 CUDA device"),
        ("cuda:x", "auto", H200, "--device: expected cuda or cuda:N"),
        ("mps", "auto", EPYC, "--device: this machine has no Apple MPS device"),
        ("tpu", "auto", EPYC, "--device: must be one of auto, cpu, cuda, cuda:N, mps"),
        ("auto", "float16", EPYC, "--dtype: must be one of auto, float32, bfloat16"),
    ],
)
def test_impossible_choices_are_one_line_errors(device, dtype, hardware, message):
    with pytest.raises(Evo1Error, match=f"^{message}"):
        choose_placement(device, dtype, hardware)


def test_cpu_bf16_detection_from_torch_or_proc_cpuinfo():
    assert cpu_bf16_features("", {"avx512_bf16": True, "amx_bf16": False, "avx2": True}) == ("avx512_bf16",)
    xeon = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert cpu_bf16_features(xeon, {}) == ("amx_bf16", "avx512_bf16")
    epyc = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f\n"  # AVX-512 alone is not native bf16
    assert cpu_bf16_features(epyc, {}) == ()
    graviton3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    assert cpu_bf16_features(graviton3, {}) == ("bf16",)
    assert cpu_bf16_features("", {}) == ()


def test_this_machine_agrees_with_its_own_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    native = {"avx512_bf16", "amx_bf16"} & set(flags.split())
    assert set(cpu_bf16_features()) >= native


def evo1(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "tiny"
    result = evo1("model", "init", "--preset", "tiny", "--out", str(out), "--state-dim", "8", "--action-dim", "4")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--checkpoint", "{ckpt}", "--port", "0"],
        ["model", "predict", "{ckpt}", "--image", "none", "--prompt", "p", "--state", "0,0,0,0,0,0,0,0"],
        ["bench", "metaworld", "-c", "{ckpt}", "--tasks", "reach-v3", "--episodes", "1"],
        ["deploy", "so100", "--fake", "-c", "{ckpt}", "--task", "t"],
    ],
    ids=["serve", "predict", "bench", "deploy"],
)
def test_every_command_decides_through_it(checkpoint, command):
    """An impossible --device fails at the decision, with its one line, before anything is loaded or run."""
    if choose_placement().device.startswith("cuda"):
        pytest.skip("this machine has a CUDA device")
    result = evo1(*[a.replace("{ckpt}", str(checkpoint)) for a in command], "--device", "cuda", "--dtype", "float32")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == "error: --device: no CUDA device is visible (torch sees none); use --device cpu"


@pytest.mark.slow
def test_predict_announces_the_placement_and_runs_in_it(checkpoint):
    common = ["model", "predict", str(checkpoint), "--image", "none", "--prompt", "p", "--state", "0,0,0,0,0,0,0,0"]
    fp32 = evo1(*common, "--device", "cpu", "--dtype", "float32", "--json")
    assert fp32.returncode == 0, fp32.stderr
    bf16 = evo1(*common, "--device", "cpu", "--dtype", "bfloat16", "--json")
    assert bf16.returncode == 0, bf16.stderr
    (a, a_info), (b, b_info) = ((np.array(d["actions"]), d) for d in (json.loads(r.stdout) for r in (fp32, bf16)))
    assert (a_info["device"], a_info["dtype"]) == ("cpu", "float32")
    assert a_info["placement"] == "cpu as asked; float32 as asked"
    assert (b_info["device"], b_info["dtype"]) == ("cpu", "bfloat16")
    human = evo1(*common, "--device", "cpu", "--dtype", "float32")
    assert human.stdout.startswith("device cpu, float32 (cpu as asked; float32 as asked)")  # the banner
    assert a.shape == b.shape == (50, 4) and not np.array_equal(a, b)  # really ran in another precision
    assert np.abs(a - b).max() < 0.25 * np.abs(a).max() + 0.1  # ... and still the same policy
