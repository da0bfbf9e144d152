"""Full-reference PSNR and SSIM.

SSIM follows Wang et al. (IEEE TIP 2004): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
L = data range, statistics with population (1/N) moments, computed on the 'valid' region (no padding)
of each channel and averaged over channels and pixels. This matches scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

One torch implementation serves both training (differentiable, (B, 3, H, W)) and evaluation (numpy
HWC arrays are converted, float64 for accuracy).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dehazekit.runtimes.errors import InputError

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _gauss_1d(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(WINDOW, dtype=dtype, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian filter per channel: (B, C, H, W) -> (B, C, H-10, W-10)."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, WINDOW), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, WINDOW, 1), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of two (B, C, H, W) tensors, valid region (B, C, H-10, W-10)."""
    if x.shape != y.shape or x.dim() != 4:
        raise InputError.build(
            "SSIM inputs must match and be (B, C, H, W)", got=f"{tuple(x.shape)} vs {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < WINDOW:
        raise InputError.build(
            "image too small for SSIM", got=tuple(x.shape[-2:]), expected=f">= {WINDOW} px"
        )
    g = _gauss_1d(x.dtype, x.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    vx = _filter(x * x, g) - mx * mx
    vy = _filter(y * y, g) - my * my
    cxy = _filter(x * y, g) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(B,) mean SSIM per image; differentiable."""
    return ssim_map(x, y, data_range).mean(dim=(1, 2, 3))


def psnr_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(B,) PSNR in dB per image; identical images give +inf."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse)


def _as_tensor(img: np.ndarray) -> torch.Tensor:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise InputError.build("expected an (H, W) or (H, W, C) image", got=arr.shape)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two HWC images, uint8 or float in [0, 1] (data range 1 after conversion)."""
    ta, tb = _as_tensor(a), _as_tensor(b)
    if ta.shape != tb.shape:
        raise InputError.build("PSNR inputs differ in size", got=f"{tuple(ta.shape)} vs {tuple(tb.shape)}")
    return float(psnr_torch(ta, tb)[0])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two HWC images (uint8 or float in [0, 1]), mean over channels."""
    return float(ssim_torch(_as_tensor(a), _as_tensor(b))[0])
