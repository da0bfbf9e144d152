"""PSNR/SSIM: standard definitions, cross-checked against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dehazekit.metrics.psnr_ssim import psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


def _pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.uniform(0, 1, (48, 40, 3)), (2, 2, 0))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    return a, b


def test_ssim_matches_skimage_gaussian():
    for seed in range(3):
        a, b = _pair(seed)
        ref = skimage_metrics.structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=2,
        )
        assert ssim(a, b) == pytest.approx(ref, abs=1e-6)


def test_ssim_identity_and_ordering():
    a, b = _pair()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    worse = np.clip(a + np.random.default_rng(9).normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, worse) < ssim(a, b) < 1


def test_psnr_matches_formula_and_uint8():
    a, b = _pair()
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)
    a8, b8 = (a * 255).round().astype(np.uint8), (b * 255).round().astype(np.uint8)
    ref = skimage_metrics.peak_signal_noise_ratio(a8, b8, data_range=255)
    assert psnr(a8, b8) == pytest.approx(ref, rel=1e-9)
