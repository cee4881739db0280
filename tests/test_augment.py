"""The torch image augmentation against torchvision's formulas."""

from __future__ import annotations

import math

import torch

from evo1cli.data.augment import Augmentation, adjust_brightness, adjust_hue, hsv_to_rgb, rgb_to_hsv, warp


def _image(seed=0, size=24):
    return torch.randint(0, 256, (3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_identity_warp_returns_the_image():
    x = _image().float() / 255
    assert torch.allclose(warp(x, (0, 0, 24, 24), 0.0), x, atol=1e-5)


def test_crop_warp_resizes_the_box():
    x = torch.zeros(1, 8, 8)
    x[:, 4:, 4:] = 1.0  # bottom-right quadrant
    out = warp(x.expand(3, 8, 8), (4, 4, 4, 4), 0.0)  # crop exactly that quadrant
    assert out.min() > 0.99


def test_rotation_by_90_degrees_turns_the_image():
    x = _image().float() / 255
    out = warp(x, (0, 0, 24, 24), math.pi / 2)
    assert torch.allclose(out, torch.rot90(x, 1, dims=(1, 2)), atol=1e-4) or torch.allclose(
        out, torch.rot90(x, -1, dims=(1, 2)), atol=1e-4
    )


def test_colour_formulas():
    x = torch.rand(3, 5, 5)
    assert torch.allclose(adjust_brightness(x, 0.5), x * 0.5)
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    green = adjust_hue(red, 1 / 3)
    assert torch.allclose(green, torch.stack([torch.zeros(2, 2), torch.ones(2, 2), torch.zeros(2, 2)]), atol=1e-6)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6)
    assert torch.allclose(adjust_hue(x, 0.0), x, atol=1e-6)


def test_augmentation_keeps_shape_dtype_and_is_reproducible():
    image = _image(size=32)
    aug = Augmentation(p=1.0)
    a = aug(image, torch.Generator().manual_seed(3))
    b = aug(image, torch.Generator().manual_seed(3))
    assert a.shape == image.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, image)
    assert torch.equal(Augmentation(p=0.0)(image), image)
    changed = sum(not torch.equal(Augmentation()(image, torch.Generator().manual_seed(s)), image) for s in range(200))
    assert 70 < changed < 130  # p = 0.5
