"""Test-only stand-in for the parts of torchvision that lerobot.datasets 0.3.3 uses (see ../README.md)."""

from torchvision import io, transforms

__all__ = ["io", "set_video_backend", "transforms"]
__version__ = "0.0.0+evo1.compat"


def set_video_backend(backend: str) -> None:
    if backend != "pyav":
        raise RuntimeError(f"this stand-in decodes with PyAV only, not {backend!r}")
