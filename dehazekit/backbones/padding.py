"""Pad-and-crop (never resize) so any H x W reaches a backbone's pad multiple and minimum size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def padded_size(size: int, multiple: int, min_size: int = 1) -> int:
    target = max(size, min_size)
    return -(-target // multiple) * multiple


def pad_to_multiple(
    x: torch.Tensor, multiple: int, min_size: int = 1
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) on the bottom/right; returns the padded tensor and the original (H, W).

    Reflection needs pad < size, so very small inputs fall back to replicate padding for the excess.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple, min_size) - h, padded_size(w, multiple, min_size) - w
    if ph == 0 and pw == 0:
        return x, (h, w)
    rh, rw = min(ph, h - 1), min(pw, w - 1)
    x = F.pad(x, (0, rw, 0, rh), mode="reflect") if (rh or rw) else x
    if ph - rh or pw - rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x, (h, w)


def forward_padded(
    model: nn.Module, x: torch.Tensor, multiple: int | None = None, min_size: int | None = None
) -> torch.Tensor:
    """Run ``model`` on any-size input: pad to its multiple/min size, crop the output back."""
    from dehazekit.backbones.registry import spec_of

    if multiple is None or min_size is None:
        spec = spec_of(model)
        multiple = spec.pad_multiple if multiple is None else multiple
        min_size = spec.min_size if min_size is None else min_size
    padded, (h, w) = pad_to_multiple(x, multiple, min_size)
    return model(padded)[..., :h, :w]
