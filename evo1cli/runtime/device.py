"""Where a policy runs and in which precision: one decision for serve, bench, deploy and `model predict`
(and, through `training_precision`, for training's mixed precision).

    --device auto   CUDA (device 0) when present, else Apple's MPS, else the CPU
    --dtype  auto   bfloat16 on a CUDA GPU with native bf16 (Ampere and later) and on a CPU with native
                    bf16 (AVX512-BF16 or AMX-BF16 on x86, the BF16 extension on Arm); float32 otherwise

Why bf16 on such CPUs: a full-size chunk took 2.7 s in bf16 against 18 s in float32 on a Xeon with
avx512_bf16, while on a CPU without it bf16 is emulated and about 4x slower than float32 (measured for
this project on 2-core cloud machines). MPS stays in float32: its bf16 support depends on the macOS version.

`choose_placement` is pure: it takes the machine's facts (`Hardware`, from `detect_hardware()`) so that
tests can inject any machine. Its `Placement.reason` is what the commands print at start.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evo1cli.errors import Evo1Error

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = ("auto", "float32", "bfloat16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo: x86 `flags`, Arm `Features`


@dataclass(frozen=True)
class Hardware:
    """The facts the decision needs."""

    cuda: tuple[str, ...] = ()  # names of the visible CUDA devices
    cuda_bf16: tuple[bool, ...] = ()  # native bf16 per CUDA device (not emulated)
    mps: bool = False
    cpu_bf16: tuple[str, ...] = ()  # the CPU's native-bf16 features found (empty: none)


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32" | "bfloat16"
    reason: str  # one line: what was chosen and why

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    def banner(self) -> str:
        return f"device {self.device}, {self.dtype} ({self.reason})"


def choose_placement(device: str = "auto", dtype: str = "auto", hardware: Hardware | None = None) -> Placement:
    """The device and dtype to run a policy with, and why (see the module docstring)."""
    hw = hardware if hardware is not None else detect_hardware()
    chosen, why_device = _device(device.strip().lower(), hw)
    dtype = dtype.strip().lower()
    if dtype not in DTYPES:
        raise Evo1Error(f"must be one of {', '.join(DTYPES)}, got {dtype!r}", field="--dtype")
    native = _native_bf16(chosen, hw)
    if dtype == "auto":
        dtype = "bfloat16" if native else "float32"
        why_dtype = f"auto: {native}" if native else f"auto: {_no_bf16(chosen)}"
    elif dtype == "bfloat16" and not native:
        why_dtype = f"bfloat16 as asked, though {_no_bf16(chosen)}: expect it slower than float32"
    else:
        why_dtype = f"{dtype} as asked"
    return Placement(chosen, dtype, f"{why_device}; {why_dtype}")


def _device(device: str, hw: Hardware) -> tuple[str, str]:
    if device == "auto":
        if hw.cuda:
            return "cuda:0", f"auto: CUDA device 0 is {hw.cuda[0]}"
        if hw.mps:
            return "mps", "auto: no CUDA device, Apple MPS present"
        return "cpu", "auto: no CUDA or MPS device"
    if device == "cpu":
        return "cpu", "cpu as asked"
    if device == "mps":
        if not hw.mps:
            raise Evo1Error("this machine has no Apple MPS device", field="--device")
        return "mps", "mps as asked"
    if device == "cuda" or device.startswith("cuda:"):
        index_text = device.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise Evo1Error(f"expected cuda or cuda:N, got {device!r}", field="--device")
        index = int(index_text)
        if not hw.cuda:
            raise Evo1Error("no CUDA device is visible (torch sees none); use --device cpu", field="--device")
        if index >= len(hw.cuda):
            raise Evo1Error(f"cuda:{index} does not exist: {len(hw.cuda)} CUDA device(s) visible", field="--device")
        return f"cuda:{index}", f"cuda:{index} as asked ({hw.cuda[index]})"
    raise Evo1Error(f"must be one of {', '.join(DEVICES)}, got {device!r}", field="--device")


def _native_bf16(device: str, hw: Hardware) -> str:
    """Why bf16 is native on `device` ("" if it is not)."""
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        return "the GPU has native bf16" if index < len(hw.cuda_bf16) and hw.cuda_bf16[index] else ""
    if device == "cpu" and hw.cpu_bf16:
        return f"the CPU has native bf16 ({', '.join(hw.cpu_bf16)})"
    return ""


def _no_bf16(device: str) -> str:
    if device.startswith("cuda"):
        return "the GPU has no native bf16"
    if device == "mps":
        return "MPS bf16 depends on the macOS version"
    return "the CPU has no native bf16 (no avx512_bf16 or amx_bf16)"


def training_precision(precision: str = "auto", hardware: Hardware | None = None) -> str:
    """accelerate's `mixed_precision` for a recipe's `precision` (auto, bf16 or fp32): auto is "bf16" on a
    CUDA GPU with native bf16 (device 0, the one a single process trains on; the same test as `--dtype
    auto`), else "no" (float32: training on a CPU stays in float32 even where inference uses bf16)."""
    if precision == "auto":
        hw = hardware if hardware is not None else detect_hardware()
        return "bf16" if hw.cuda and _native_bf16("cuda:0", hw) else "no"
    return "bf16" if precision == "bf16" else "no"


# ---------------------------------------------------------------------------------------------- detection
def detect_hardware() -> Hardware:
    import torch

    names, bf16 = [], []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            names.append(torch.cuda.get_device_name(i))
            bf16.append(torch.cuda.get_device_capability(i)[0] >= 8)  # Ampere and later compute natively
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return Hardware(tuple(names), tuple(bf16), mps, cpu_bf16_features())


def cpu_bf16_features(cpuinfo: str | None = None, torch_capability: dict | None = None) -> tuple[str, ...]:
    """The CPU's native-bf16 features: from torch's own CPU probe (cpuinfo, every platform torch runs
    on) when it has one, else Linux's /proc/cpuinfo flags, else (macOS on Apple silicon) sysctl."""
    found: set[str] = set()
    capability = torch_capability if torch_capability is not None else _torch_cpu_capability()
    found.update(k for k in ("avx512_bf16", "amx_bf16") if capability.get(k) is True)
    text = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found.update(flag for flag in value.split() if flag in CPU_BF16_FLAGS)
            break
    if not found and cpuinfo is None and torch_capability is None and platform.system() == "Darwin":
        found.update(["FEAT_BF16"] if _sysctl("hw.optional.arm.FEAT_BF16") == "1" else [])
    return tuple(sorted(found))


def _torch_cpu_capability() -> dict:
    try:
        import torch

        probe = getattr(torch._C._cpu, "_get_cpu_capability", None)  # torch >= 2.8; private, hence guarded
        result = probe() if probe is not None else {}
        return result if isinstance(result, dict) else {}
    except Exception:  # an older or unusual torch build: fall back to the OS
        return {}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
