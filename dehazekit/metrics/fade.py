"""FADE: Fog Aware Density Evaluator (Choi, You, Bovik, IEEE TIP 24(11) 2015), a numpy/scipy port.

The score of an 8-bit RGB image is ``D = Df / (Dff + 1)``: ``Df`` is the mean, over 8x8 patches, of
the Mahalanobis-like distance between the patch's 12 fog-aware features and a multivariate Gaussian
fitted to natural fog-FREE images, ``Dff`` the same against FOGGY images. Lower D = less fog.

The 12 features per patch (all passed through ``log(1 + f)``):
  1 variance of MSCN coefficients; 2, 3 variance of the positive / negative vertical MSCN products;
  4 mean local std (sigma); 5 mean coefficient of variation sigma/mu; 6-8 mean contrast energy of
  the grey, yellow-blue and red-green channels; 9 entropy of the grey patch; 10 mean dark channel;
  11 mean HSV saturation; 12 colourfulness (Hasler-Suesstrunk form on the patch).

The distance for patch i uses the covariance ``(Sigma_model + v_i * ones(12, 12)) / 2`` where v_i is
the variance of the patch's own 12 features: this follows the LIVE release, which spreads v_i over the
whole 12x12 block, not only its diagonal. NaN features (flat patches) drop out of the means, and a
single-sample variance is 0 (MATLAB's nanvar semantics), because the reference scores were made that way.

Against the reference scores of LIVE's FADE.m run in Octave (../shared/metrics/fade) the port agrees
to within 2e-6 relative on every row; that needs the MSCN filter's tap order and fused multiply-add
rounding reproduced (see ``_filter_replicate``).

The model parameters (two .mat files from LIVE's release) are read from a directory the user gives;
they are not shipped with dehazekit. See the LIVE notice that must accompany them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from dehazekit.runtimes.errors import InputError, ModelFileError

PATCH = 8
FOGFREE_FILE = "natural_fogfree_image_features_ps8.mat"
FOGGY_FILE = "natural_foggy_image_features_ps8.mat"
# Luma weights of the grey conversion (first row of the inverse NTSC/YIQ matrix), used for feature 9 and MSCN.
_GREY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
# Contrast-energy constants (Groen et al.): noise thresholds per channel, semisaturation, Gaussian sigma.
_CE_SIGMA = 3.25
_CE_SEMISAT = 0.1
_CE_THRESH = (9.225496406318721e-4 * 255, 8.969246659629488e-4 * 255, 2.069284034165411e-4 * 255)
_CE_BORDER = 20


@dataclass(frozen=True)
class FadeParams:
    """Natural fog-free and foggy feature models: means (12,) and covariances (12, 12)."""

    mu_fogfree: np.ndarray
    cov_fogfree: np.ndarray
    mu_foggy: np.ndarray
    cov_foggy: np.ndarray

    @classmethod
    def load(cls, directory: str | Path) -> FadeParams:
        from scipy.io import loadmat

        directory = Path(directory)
        files = {name: directory / name for name in (FOGFREE_FILE, FOGGY_FILE)}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise ModelFileError.build(
                "FADE parameter files not found",
                got=missing,
                expected=f"{FOGFREE_FILE} and {FOGGY_FILE}",
                fix="pass --fade-params DIR pointing at LIVE's FADE release .mat files",
            )
        free, foggy = loadmat(files[FOGFREE_FILE]), loadmat(files[FOGGY_FILE])
        try:
            return cls(
                np.asarray(free["mu_fogfreeparam"], np.float64).ravel(),
                np.asarray(free["cov_fogfreeparam"], np.float64),
                np.asarray(foggy["mu_foggyparam"], np.float64).ravel(),
                np.asarray(foggy["cov_foggyparam"], np.float64),
            )
        except KeyError as exc:
            raise ModelFileError.build(
                "FADE .mat file lacks a key",
                got=str(exc),
                expected="mu_/cov_fogfreeparam and mu_/cov_foggyparam",
            ) from exc


def _patches(img: np.ndarray) -> np.ndarray:
    """(H, W) with H, W multiples of 8 -> (H/8, W/8, 64): the distinct 8x8 blocks."""
    h, w = img.shape
    return (
        img.reshape(h // PATCH, PATCH, w // PATCH, PATCH)
        .transpose(0, 2, 1, 3)
        .reshape(h // PATCH, w // PATCH, -1)
    )


def _nanvar(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sample variance ignoring NaN; one sample -> 0, none -> NaN (MATLAB nanvar, not numpy's)."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=axis)
    xs = np.where(valid, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=axis) / n
        dev = np.where(valid, x - np.expand_dims(mean, axis), 0.0)
        var = (dev**2).sum(axis=axis) / np.maximum(n - 1, 1)
    return np.where(n == 0, np.nan, var)


def _grey_uint8(rgb: np.ndarray) -> np.ndarray:
    """rgb2gray on uint8: weighted sum rounded half away from zero, as an 8-bit image."""
    grey = rgb[..., 0] * _GREY[0] + rgb[..., 1] * _GREY[1] + rgb[..., 2] * _GREY[2]
    return np.clip(np.floor(grey + 0.5), 0, 255)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    vmax, vmin = rgb.max(axis=-1), rgb.min(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(vmax > 0, (vmax - vmin) / vmax, 0.0)


def _ce_filter() -> np.ndarray:
    """Second-derivative-of-Gaussian kernel; x runs -9.75 .. 9.25 (20 taps, as in the release)."""
    half = 3 * _CE_SIGMA
    x = np.arange(-half, half + 1e-9, 1.0)
    gauss = np.exp(x**2 / (-2 * _CE_SIGMA**2)) / (np.sqrt(2 * np.pi) * _CE_SIGMA)
    gauss /= gauss.sum()
    gx = (x**2 / _CE_SIGMA**4 - 1 / _CE_SIGMA**2) * gauss
    gx = gx - gx.sum() / x.size
    return gx / np.sum(0.5 * x * x * gx)


def _border_in(img: np.ndarray, b: int) -> np.ndarray:
    """Extend by copying (not mirroring) the first b/2 and last b/2 rows, then columns."""
    top, bottom = b // 2, b // 2  # even b: b/2 rows each side (b/2 - 1 + 1 at the end)
    img = np.concatenate([img[:top], img, img[-bottom:]], axis=0)
    return np.concatenate([img[:, :top], img, img[:, -bottom:]], axis=1)


def _conv_same(img: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Zero-padded true convolution along one axis, 'same' size with MATLAB's centre for even kernels."""
    k = kernel[None, :] if axis == 1 else kernel[:, None]
    full = signal.convolve2d(img, k, mode="full")
    start = kernel.size // 2
    n = img.shape[axis]
    return full[:, start : start + n] if axis == 1 else full[start : start + n, :]


def _contrast_energy(channel: np.ndarray, threshold: float, kernel: np.ndarray) -> np.ndarray:
    b = _CE_BORDER
    padded = _border_in(channel, b)
    mag = np.sqrt(_conv_same(padded, kernel, 1) ** 2 + _conv_same(padded, kernel, 0) ** 2)
    mag = mag[b // 2 : -(b // 2), b // 2 : -(b // 2)]
    peak = mag.max()
    with np.errstate(invalid="ignore", divide="ignore"):
        response = mag * peak / (mag + peak * _CE_SEMISAT) - threshold
    return np.where(response > 1e-7, response, 0.0)


def _patch_entropy(grey: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of each 8x8 block's 256-bin histogram."""
    blocks = _patches(grey).astype(np.int64)
    gh, gw, n = blocks.shape
    flat = blocks.reshape(-1, n)
    counts = np.zeros((flat.shape[0], 256))
    np.add.at(counts, (np.repeat(np.arange(flat.shape[0]), n), flat.ravel()), 1.0)
    p = counts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return ent.reshape(gh, gw)


def _seq_sum(values: np.ndarray) -> float:
    """Left-to-right sum in column-major order (Octave's sum), not numpy's pairwise sum."""
    total = 0.0
    for v in np.asarray(values, np.float64).ravel(order="F"):
        total += v
    return total


def _mscn_window() -> np.ndarray:
    """fspecial('gaussian', 7, 7/6) normalised by sum(h(:)), then FADE's extra division by sum(sum(h))."""
    ax = np.arange(-3, 4, dtype=np.float64)
    x, y = np.meshgrid(ax, ax)
    h = np.exp(-(x**2 + y**2) / (2 * (7 / 6) ** 2))
    h = h / _seq_sum(h)
    return h / _seq_sum([_seq_sum(h[:, j]) for j in range(h.shape[1])])


_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp splitting constant for doubles


def _split(v):
    t = _SPLIT * v
    hi = t - (t - v)
    return hi, v - hi


def _filter_replicate(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """imfilter(img, window, 'replicate') as the reference Octave computes it.

    Octave accumulates the 49 taps one at a time (last column and row of the rotated kernel first)
    with fused multiply-adds. In flat regions the sign of (I - mu) is pure rounding, and that sign
    decides whether a patch's paired-product variance is NaN (the patch then drops out of D), so the
    order and the single rounding matter: with them the scores agree to ~1e-6, without to ~1e-3.
    The FMA is emulated exactly enough with Dekker's product and a two-sum (portable, no long double).
    """
    k = window.shape[0]
    h, w = img.shape
    pad = np.pad(img, k // 2, mode="edge")
    pad_hi, pad_lo = _split(pad)
    acc = np.zeros_like(img)
    for q in range(k - 1, -1, -1):
        for p in range(k - 1, -1, -1):
            a = float(window[p, q])
            a_hi, a_lo = _split(a)
            x, x_hi, x_lo = (arr[p : p + h, q : q + w] for arr in (pad, pad_hi, pad_lo))
            prod = a * x
            err = ((a_hi * x_hi - prod) + a_hi * x_lo + a_lo * x_hi) + a_lo * x_lo  # a*x = prod + err exactly
            s = prod + acc
            bb = s - prod
            acc = s + (((prod - (s - bb)) + (acc - bb)) + err)  # two-sum correction + product error
    return acc


def _mscn_features(grey: np.ndarray) -> tuple[np.ndarray, ...]:
    window = _mscn_window()
    mu = _filter_replicate(grey, window)
    sigma = np.sqrt(np.abs(_filter_replicate(grey * grey, window) - mu * mu))
    mscn = (grey - mu) / (sigma + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = sigma / mu
    pair = _patches(mscn * np.roll(mscn, 1, axis=0))
    f1 = _nanvar(_patches(mscn))
    f2 = _nanvar(np.where(pair < 0, np.nan, pair))  # non-negative products
    f3 = _nanvar(np.where(pair > 0, np.nan, pair))  # non-positive products
    return f1, f2, f3, _patches(sigma).mean(-1), _patches(cv).mean(-1)


def fade_features(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H//8, W//8, 12) log(1 + feature) per patch (bottom/right remainder cropped)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
        raise InputError.build(
            "FADE needs an 8-bit RGB image", got=f"{img.dtype} {img.shape}", expected="uint8 (H, W, 3)"
        )
    h, w = (img.shape[0] // PATCH) * PATCH, (img.shape[1] // PATCH) * PATCH
    if h == 0 or w == 0:
        raise InputError.build("image too small for FADE", got=img.shape[:2], expected=">= 8x8")
    rgb = img[:h, :w, :3].astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    grey = _grey_uint8(rgb)
    rg, yb = r - g, 0.5 * (r + g) - b
    kernel = _ce_filter()
    ce_grey = _contrast_energy(0.299 * r + 0.587 * g + 0.114 * b, _CE_THRESH[0], kernel)
    ce_yb = _contrast_energy(yb, _CE_THRESH[1], kernel)
    ce_rg = _contrast_energy(rg, _CE_THRESH[2], kernel)
    prg, pyb = _patches(rg), _patches(yb)
    colourful = np.sqrt(prg.std(-1, ddof=1) ** 2 + pyb.std(-1, ddof=1) ** 2) + 0.3 * np.sqrt(
        prg.mean(-1) ** 2 + pyb.mean(-1) ** 2
    )
    feats = [
        *_mscn_features(grey),
        _patches(ce_grey).mean(-1),
        _patches(ce_yb).mean(-1),
        _patches(ce_rg).mean(-1),
        _patch_entropy(grey),
        _patches(rgb.min(-1) / 255).mean(-1),
        _patches(_saturation(rgb)).mean(-1),
        colourful,
    ]
    return np.log1p(np.stack(feats, axis=-1))


def _distances(feat: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(N, 12) features -> (N,) distances; NaN where a patch has a non-finite feature."""
    n, k = feat.shape
    out = np.full(n, np.nan)
    v = _nanvar(feat, axis=1)
    ok = np.isfinite(feat).all(axis=1) & np.isfinite(v)
    diff = mu[None, :] - feat[ok]
    mats = (cov[None] + v[ok, None, None] * np.ones((1, k, k))) / 2
    # d^T C^-1 d via a batched solve (C symmetric, so row-vector / C equals solve(C, d)).
    sol = np.linalg.solve(mats, diff[..., None])[..., 0]
    out[ok] = np.sqrt((sol * diff).sum(axis=1))
    return out


def fade(image: np.ndarray, params: FadeParams, return_map: bool = False):
    """Perceptual fog density D of an (H, W, 3) uint8 RGB image; with ``return_map`` also the (H/8, W/8)
    map."""
    feat = fade_features(image)
    gh, gw, k = feat.shape
    flat = feat.reshape(-1, k)
    df = _distances(flat, params.mu_fogfree, params.cov_fogfree)
    dff = _distances(flat, params.mu_foggy, params.cov_foggy)
    score = float(np.nanmean(df) / (np.nanmean(dff) + 1))
    if return_map:
        return score, (df / (dff + 1)).reshape(gh, gw)
    return score
