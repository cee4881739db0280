"""Training image augmentation as the authors' Evo-1 training applies it, in plain torch: no torchvision here.

Each image, with probability p = 0.5, gets
    a random resized crop (area 0.95-1.0, aspect 3/4-4/3) and a rotation of +-5 degrees, applied together
    as one bicubic resampling (corners outside the image are black, as torchvision fills them), then
    colour jitter: brightness 0.3, contrast 0.4, saturation 0.5, hue 0.08, in a random order,
with the parameter draws and formulas of torchvision's RandomResizedCrop, RandomRotation and ColorJitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


@dataclass(frozen=True)
class Augmentation:
    p: float = 0.5
    scale: tuple[float, float] = (0.95, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    degrees: float = 5.0
    brightness: float = 0.3
    contrast: float = 0.4
    saturation: float = 0.5
    hue: float = 0.08

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(3, H, W) uint8 -> (3, H, W) uint8, augmented with probability p."""
        if _uniform(0, 1, generator) >= self.p:
            return image
        x = image.float() / 255
        x = self.crop_and_rotate(x, generator)
        x = self.jitter(x, generator)
        return (x * 255).round_().clamp_(0, 255).to(torch.uint8)

    # ------------------------------------------------------------------ geometry
    def crop_box(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int, int, int]:
        """(top, left, h, w) as RandomResizedCrop.get_params draws it."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(*self.scale, generator)
            aspect = math.exp(_uniform(*log_ratio, generator))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        return 0, 0, height, width

    def crop_and_rotate(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        _, height, width = x.shape
        top, left, h, w = self.crop_box(height, width, generator)
        angle = math.radians(_uniform(-self.degrees, self.degrees, generator))
        return warp(x, (top, left, h, w), angle)

    # ------------------------------------------------------------------ colour
    def jitter(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = _uniform(1 - self.brightness, 1 + self.brightness, generator)
        c = _uniform(1 - self.contrast, 1 + self.contrast, generator)
        s = _uniform(1 - self.saturation, 1 + self.saturation, generator)
        h = _uniform(-self.hue, self.hue, generator)
        for op in torch.randperm(4, generator=generator).tolist():
            if op == 0:
                x = adjust_brightness(x, b)
            elif op == 1:
                x = adjust_contrast(x, c)
            elif op == 2:
                x = adjust_saturation(x, s)
            else:
                x = adjust_hue(x, h)
        return x


def warp(x: torch.Tensor, box: tuple[int, int, int, int], angle: float) -> torch.Tensor:
    """Crop `box` = (top, left, h, w) of (3, H, W), resize it to H x W and rotate it by `angle` (radians,
    counter-clockwise) about the centre, in one bicubic resampling of the crop (its edges replicated, as a
    resize sees them); corners that the rotation brings in from outside are 0, as torchvision fills them."""
    _, height, width = x.shape
    top, left, h, w = box
    crop = x[:, top : top + h, left : left + w]
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1  # output pixel centres in [-1, 1]
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    # Inverse rotation (output -> crop coordinates in [-1, 1]), in pixel units so the rotation is rigid.
    px, py = gx * width / 2, gy * height / 2
    cx = (cos * px - sin * py) / (width / 2)
    cy = (sin * px + cos * py) / (height / 2)
    grid = torch.stack([cx, cy], dim=-1)[None]
    out = F.grid_sample(crop[None], grid, mode="bicubic", padding_mode="border", align_corners=False)[0]
    inside = (cx.abs() <= 1) & (cy.abs() <= 1)
    return (out * inside).clamp_(0, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(0)
    return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b)[None]


# Each adjustment is torchvision's blend `factor * x + (1 - factor) * other`, clamped to [0, 1], written
# with as few passes over the image as possible (a 448 px image costs ~1 ms per pass here).
def adjust_brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    return (x * factor).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    return (x * factor).add_((1 - factor) * float(grayscale(x).mean())).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    return torch.lerp(grayscale(x).expand_as(x), x, factor).clamp_(0, 1)


def _hue_sextants(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(6 h, max, chroma) per pixel, h from the max channel with r before g before b, as torchvision."""
    r, g, b = x.unbind(0)
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    h6 = torch.where(maxc == r, g - b, torch.where(maxc == g, b - r + 2.0 * chroma, r - g + 4.0 * chroma))
    return h6.div_(torch.where(chroma > 0, chroma, 1.0)), maxc, chroma


def _from_sextants(h6: torch.Tensor, value: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """channel n of (R, G, B) = v - c clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6, n = 5, 3, 1."""
    k = (torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1) + h6) % 6.0
    return value - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def adjust_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` (a fraction of the colour circle, in [-0.5, 0.5])."""
    h6, value, chroma = _hue_sextants(x)
    return _from_sextants(h6.add_(6.0 * shift), value, chroma)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    h6, value, chroma = _hue_sextants(x)
    saturation = chroma / torch.where(value > 0, value, 1.0)
    return torch.stack([(h6 / 6.0) % 1.0, saturation, value])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(0)
    return _from_sextants(h * 6.0, v, v * s)
