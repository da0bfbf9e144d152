"""Image helpers for the torch side: float views of dehazekit.runtimes.media (the one media layer that
lists, reads and writes images for every command), plus JPEG round trips and float resizes.

Arrays here are HWC. ``read_rgb`` gives float32 in [0, 1]; ``read_rgb_uint8`` gives uint8 (FADE and
the other no-reference metrics are defined on 8-bit images).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from dehazekit.runtimes.media import IMAGE_SUFFIXES, encode_image, list_images, read_image  # noqa: F401
from dehazekit.runtimes.media import write_image as media_write_image


def read_rgb_uint8(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright, any bit depth scaled (media.read_image). ``max_side`` downscales."""
    return read_image(path, max_side=max_side)


def read_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]."""
    return read_rgb_uint8(path, max_side).astype(np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding (not truncation, which darkens by half a level)."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_image(path: str | Path, img: np.ndarray, quality: int = 95) -> Path:
    """Write float [0, 1] or uint8 HWC RGB atomically; the format follows the suffix."""
    return media_write_image(path, img, quality=quality)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-compress a float [0, 1] image as JPEG (4:2:0, like cameras) and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as dec:
        return np.asarray(dec.convert("RGB"), dtype=np.float32) / 255.0


def resize_float(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map to (H, W) (depth maps, smooth fields)."""
    h, w = size
    resized = Image.fromarray(np.asarray(img, dtype=np.float32), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)
