"""Inputs for parity checks: random tensors at valid sizes and centre crops of real photos (never resized).

Small sizes catch graph errors cheaply; the realistic size (a 3:4 frame, 512 px long side) and the photos
at their own size catch what only shows at deployment sizes (size-dependent branches baked in by tracing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.media import IMAGE_SUFFIXES, is_image, read_image
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)
PARITY_LONG_SIDE = 512  # the realistic-size case: a 3:4 frame with this long side (0 disables it)


def default_sizes(pad_multiple: int, min_size: int) -> list[tuple[int, int]]:
    """Two valid sizes, one square and one not, both different from the export trace size."""
    from dehazekit.backbones import padded_size

    square = padded_size(48, pad_multiple, min_size)
    tall = padded_size(square + 2 * pad_multiple, pad_multiple, min_size)
    return [(square, square), (tall, padded_size(tall + 3 * pad_multiple, pad_multiple, min_size))]


def realistic_size(long_side: int, pad_multiple: int, min_size: int) -> tuple[int, int]:
    """A 3:4 landscape frame whose long side is ``long_side`` rounded up to a valid size."""
    from dehazekit.backbones import padded_size

    return padded_size(long_side * 3 // 4, pad_multiple, min_size), padded_size(
        long_side, pad_multiple, min_size
    )


def _load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1], read through the media layer (upright, any bit depth, sRGB)."""
    return read_image(path).astype(np.float32) / 255.0


def _centre_crop(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
    return np.ascontiguousarray(rgb[top : top + h, left : left + w].transpose(2, 0, 1)[None])


def _own_size(
    shape: tuple[int, ...], long_side: int, pad_multiple: int, min_size: int
) -> tuple[int, int] | None:
    """The photo's own size capped at ``long_side`` (crop, never resize), down to the pad multiple."""
    h, w = (min(side, long_side) // pad_multiple * pad_multiple for side in shape[:2])
    return (h, w) if min(h, w) >= min_size else None


def image_inputs(
    images_dir: str | Path,
    sizes: Sequence[tuple[int, int]],
    limit: int = 2,
    *,
    own_size: tuple[int, int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Centre crops (never resizes) of up to ``limit`` photos at each size: (1, 3, h, w) float32 [0, 1].

    ``own_size=(long_side, pad_multiple, min_size)`` adds each photo at its own size, cropped to at most
    ``long_side`` per side and down to the pad multiple.
    """
    folder = Path(images_dir)
    files = (
        sorted(p for p in folder.iterdir() if is_image(p) and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    if not files:
        raise InputError.build(
            "no images to verify with", got=str(folder), expected=f"files {IMAGE_SUFFIXES}"
        )
    out: dict[str, np.ndarray] = {}
    for path in files[:limit]:
        rgb = _load_rgb(path)
        wanted = list(sizes)
        own = _own_size(rgb.shape, *own_size) if own_size else None
        if own is not None and own not in wanted:
            wanted.append(own)
        for h, w in wanted:
            if rgb.shape[0] < h or rgb.shape[1] < w:
                log.info("verify: %s smaller than %dx%d, skipped at that size", path.name, h, w)
                continue
            out[f"{path.stem}@{h}x{w}"] = _centre_crop(rgb, h, w)
    return out


def random_inputs(sizes: Iterable[tuple[int, int]], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"random@{h}x{w}": rng.random((batch, 3, h, w), dtype=np.float32) for h, w in sizes}


def parity_inputs(
    meta: ModelMeta,
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    images_dir: str | Path | None = None,
    batch: int = 1,
    long_side: int = PARITY_LONG_SIDE,
) -> dict[str, np.ndarray]:
    """Random inputs at two small sizes and one realistic size, plus photo crops (small and own size)."""
    sizes = list(sizes or default_sizes(meta.pad_multiple, meta.min_size))
    realistic = [realistic_size(long_side, meta.pad_multiple, meta.min_size)] if long_side else []
    cases = random_inputs([*sizes, *(s for s in realistic if s not in sizes)], batch=batch)
    if images_dir is not None:
        own = (long_side, meta.pad_multiple, meta.min_size) if long_side else None
        cases.update(image_inputs(images_dir, sizes, own_size=own))
    return cases
