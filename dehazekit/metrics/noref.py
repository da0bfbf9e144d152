"""No-reference scores on 8-bit RGB images (H, W, 3) uint8. Lower haze -> lower dark channel.

- ``dark_channel``: mean of the dark channel (He, Sun, Tang, CVPR 2009): per-pixel min over RGB, then a
  15x15 min filter, in [0, 1]. Haze-free outdoor images have it near 0; haze lifts it toward the airlight.
  ``haze_ratio`` is the share of pixels whose dark channel exceeds 0.6 (dense-haze area).
- ``colourfulness``: Hasler & Suesstrunk (SPIE 2003), M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)
  with rg = R - G, yb = (R + G) / 2 - B on the 0-255 scale. Haze washes colour out, so M drops.
- ``entropy``: Shannon entropy (bits) of the 256-bin grey histogram.
- ``naturalness``: computed by dehazekit itself, no fitted parameters. MSCN coefficients of pristine
  natural images are close to unit Gaussian (Ruderman 1994; the premise of BRISQUE/NIQE, Mittal et al.
  2012). We fit a generalised Gaussian shape alpha to the MSCN coefficients by moment matching
  (E[x^2] / E[|x|]^2 = Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2) and report exp(-|ln(alpha / 2)|) in (0, 1]:
  1 for Gaussian-shaped statistics, smaller for peaky (over-smoothed, hazy: alpha < 2) or flat
  (over-sharpened, noisy: alpha > 2) ones. It is a coarse score, not a trained quality model.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special

from dehazekit.runtimes.errors import InputError

DARK_PATCH = 15
DENSE_DARK = 0.6


def _check(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint8:
        raise InputError.build(
            "no-reference metrics need an 8-bit RGB image",
            got=f"{arr.dtype} {arr.shape}",
            expected="uint8 (H, W, 3)",
        )
    return arr[..., :3].astype(np.float64)


def dark_channel_map(img: np.ndarray, patch: int = DARK_PATCH) -> np.ndarray:
    rgb = _check(img) / 255.0
    return ndimage.minimum_filter(rgb.min(axis=2), size=patch, mode="nearest")


def dark_channel(img: np.ndarray) -> float:
    return float(dark_channel_map(img).mean())


def haze_ratio(img: np.ndarray) -> float:
    return float((dark_channel_map(img) > DENSE_DARK).mean())


def colourfulness(img: np.ndarray) -> float:
    rgb = _check(img)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def _grey(img: np.ndarray) -> np.ndarray:
    rgb = _check(img)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def entropy(img: np.ndarray) -> float:
    grey = np.clip(np.rint(_grey(img)), 0, 255).astype(np.int64)
    p = np.bincount(grey.ravel(), minlength=256) / grey.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def mscn(grey: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Gaussian window sigma 7/6, C = 1 on 0-255)."""
    mu = ndimage.gaussian_filter(grey, 7 / 6, truncate=3.0, mode="nearest")
    var = ndimage.gaussian_filter(grey * grey, 7 / 6, truncate=3.0, mode="nearest") - mu * mu
    return (grey - mu) / (np.sqrt(np.abs(var)) + 1.0)


def ggd_shape(x: np.ndarray) -> float:
    """Generalised Gaussian shape by moment matching over a grid of alpha in [0.2, 10]."""
    x = np.asarray(x, np.float64).ravel()
    mean_abs = np.abs(x).mean()
    if mean_abs == 0:
        return float("nan")
    rho = (x**2).mean() / mean_abs**2
    alphas = np.arange(0.2, 10.0, 0.001)
    r = special.gamma(1 / alphas) * special.gamma(3 / alphas) / special.gamma(2 / alphas) ** 2
    return float(alphas[np.argmin((r - rho) ** 2)])


def naturalness(img: np.ndarray) -> float:
    alpha = ggd_shape(mscn(_grey(img)))
    return float(np.exp(-abs(np.log(alpha / 2.0)))) if np.isfinite(alpha) else 0.0


NOREF = {
    "dark_channel": dark_channel,
    "haze_ratio": haze_ratio,
    "colourfulness": colourfulness,
    "entropy": entropy,
    "naturalness": naturalness,
}
# Which direction is better, for the table's colouring: -1 lower is better, +1 higher is better.
BETTER = {
    "fade": -1,
    "dark_channel": -1,
    "haze_ratio": -1,
    "colourfulness": 1,
    "entropy": 1,
    "naturalness": 1,
    "psnr": 1,
    "ssim": 1,
}
