"""Image IO helpers: list a folder, read to float RGB, write atomically, bound the size.

Arrays here are HWC. ``read_rgb`` gives float32 in [0, 1]; ``read_rgb_uint8`` gives uint8 (FADE and
the other no-reference metrics are defined on 8-bit images).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.io_utils import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | Path, what: str = "image folder", recursive: bool = True) -> list[Path]:
    """Sorted image files inside ``folder`` (and its subfolders unless ``recursive=False``).

    Raises InputError when there are none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError.build(f"{what} not found", got=str(folder), fix="pass an existing folder of images")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError.build(f"{what} holds no images", got=str(folder), expected=", ".join(IMAGE_SUFFIXES))
    return files


def read_rgb_uint8(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB; alpha is dropped, grey is expanded. ``max_side`` downscales (Lanczos)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if max_side is not None and max(img.size) > max_side:
                scale = max_side / max(img.size)
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img = img.resize(size, Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise InputError.build("cannot read image", got=f"{path}: {exc}") from exc


def read_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]."""
    return read_rgb_uint8(path, max_side).astype(np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding (not truncation, which darkens by half a level)."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def encode_image(img: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    arr = img if img.dtype == np.uint8 else to_uint8(img)
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix.lower(), "PNG")
    kwargs = {"quality": int(quality), "subsampling": 0} if fmt == "JPEG" else {"optimize": True}
    Image.fromarray(arr).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_image(path: str | Path, img: np.ndarray, quality: int = 95) -> Path:
    """Write float [0, 1] or uint8 HWC RGB atomically; the format follows the suffix."""
    path = Path(path)
    return atomic_write_bytes(path, encode_image(img, path.suffix, quality))


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
    resized = Image.fromarray(np.asarray(img, dtype=np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)
