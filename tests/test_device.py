"""`--device` / `--dtype`: one decision function, tested on injected machines (the commands: test_cli.py)."""

from __future__ import annotations

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
    """On every machine: this machine's real /proc/cpuinfo text (every core's block, every other line) parses to
    exactly its bf16 flags, the same text with them planted or removed parses to those, and the default call
    (torch's probe, then the OS) reports at least what the text says."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    lines = text.splitlines()
    index = next((i for i, line in enumerate(lines) if line.split(":")[0].strip() in ("flags", "Features")), None)
    if index is None:
        pytest.skip("/proc/cpuinfo has no flags line")
    key, _, value = lines[index].partition(":")
    flags = value.split()
    native = tuple(sorted({"avx512_bf16", "amx_bf16", "bf16"} & set(flags)))
    assert cpu_bf16_features(text, {}) == native

    def with_flags(new: list[str]) -> str:
        return "\n".join([*lines[:index], f"{key}: {' '.join(new)}", *lines[index + 1 :]])

    plain = [flag for flag in flags if flag not in {"avx512_bf16", "amx_bf16", "bf16"}]
    assert cpu_bf16_features(with_flags(plain), {}) == ()
    assert cpu_bf16_features(with_flags([*plain, "amx_bf16", "avx512_bf16"]), {}) == ("amx_bf16", "avx512_bf16")
    assert set(cpu_bf16_features()) >= set(native)


def test_training_asks_the_same_bf16_question():
    from evo1cli.runtime.device import training_precision

    ampere, volta = Hardware(cuda=("A100",), cuda_bf16=(True,)), Hardware(cuda=("V100",), cuda_bf16=(False,))
    cpu = Hardware(cpu_bf16=("avx512_bf16",))
    assert training_precision("auto", ampere) == "bf16"
    assert training_precision("auto", volta) == "no"  # no native bf16: float32, as `--dtype auto` decides
    assert training_precision("auto", cpu) == "no"  # training on a CPU stays in float32
    assert training_precision("bf16", volta) == "bf16" and training_precision("fp32", ampere) == "no"
