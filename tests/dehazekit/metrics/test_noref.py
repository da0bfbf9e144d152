"""No-reference scores: defining properties and their response to synthetic haze."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dehazekit.metrics import noref
from dehazekit.runtimes.errors import InputError


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.uniform(0, 1, (64, 64, 3)), (1.5, 1.5, 0))
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


def _haze(img: np.ndarray, t: float = 0.35, a: float = 0.9) -> np.ndarray:
    return ((img / 255.0 * t + a * (1 - t)) * 255).round().astype(np.uint8)


def test_grey_image_has_zero_colourfulness_and_constant_has_zero_entropy():
    grey = np.repeat(_scene()[..., :1], 3, axis=2)
    assert noref.colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
    assert noref.entropy(np.full((16, 16, 3), 77, np.uint8)) == 0.0
    assert noref.entropy(grey) > 4


def test_haze_raises_dark_channel_and_lowers_colour_and_entropy():
    img = _scene()
    hazy = _haze(img)
    assert noref.dark_channel(hazy) > noref.dark_channel(img) + 0.3
    assert noref.haze_ratio(hazy) > noref.haze_ratio(img)
    assert noref.colourfulness(hazy) < noref.colourfulness(img)
    assert noref.entropy(hazy) < noref.entropy(img)


def test_ggd_shape_recovers_gaussian_and_laplacian():
    rng = np.random.default_rng(0)
    assert noref.ggd_shape(rng.normal(size=200_000)) == pytest.approx(2.0, abs=0.05)
    assert noref.ggd_shape(rng.laplace(size=200_000)) == pytest.approx(1.0, abs=0.05)
    score = noref.naturalness(_scene())
    assert 0 < score <= 1


def test_rejects_float_images():
    with pytest.raises(InputError):
        noref.dark_channel(np.zeros((8, 8, 3), np.float32))
