"""Overlapping tiles with raised-cosine blending, for frames too large to run whole.

Each tile's output is weighted by a window that is 1 in its interior and ramps smoothly towards
0 across the ``overlap`` band on sides shared with a neighbour (sides on the frame border keep weight 1),
then contributions are normalised by the summed weights. Tile borders, where the network saw padding
instead of real context, therefore contribute almost nothing and no seam appears.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dehazekit.runtimes.errors import ConfigError

InferFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TileConfig:
    """``tile``: tile side in pixels; ``overlap``: shared band between neighbours; ``batch``: tiles per
    call."""

    tile: int = 512
    overlap: int = 64
    batch: int = 4

    def __post_init__(self) -> None:
        if self.tile < 8:
            raise ConfigError.build("tile size too small", got=self.tile, expected=">= 8 pixels")
        if not 0 <= self.overlap < self.tile // 2:
            raise ConfigError.build(
                "tile overlap invalid", got=self.overlap, expected=f"0 <= overlap < tile/2 ({self.tile // 2})"
            )
        if self.batch < 1:
            raise ConfigError.build("tiles per call must be >= 1", got=self.batch)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last tile flush with the border (its overlap may be larger)
    return starts


def ramp_window(size: int, overlap: int, taper_start: bool, taper_end: bool) -> np.ndarray:
    """1-D window: raised cosine over ``overlap`` samples on tapered sides, 1 elsewhere; never 0."""
    window = np.ones(size, dtype=np.float32)
    if overlap == 0:
        return window
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)
    if taper_start:
        window[:overlap] *= ramp
    if taper_end:
        window[-overlap:] *= ramp[::-1]
    return window


def needs_tiling(height: int, width: int, config: TileConfig | None) -> bool:
    return config is not None and max(height, width) > config.tile


def tiled_infer(batch: np.ndarray, run: InferFn, config: TileConfig) -> np.ndarray:
    """Run ``run`` on overlapping tiles of (B, C, H, W) ``batch`` and blend the results.

    ``run`` maps (N, C, h, w) -> (N, C_out, h, w) for any tile size (it pads/crops itself).
    """
    b, _, height, width = batch.shape
    th, tw = min(config.tile, height), min(config.tile, width)
    ys, xs = tile_starts(height, th, config.overlap), tile_starts(width, tw, config.overlap)
    boxes = [(y, x) for y in ys for x in xs]
    out: np.ndarray | None = None
    weight_sum = np.zeros((height, width), dtype=np.float32)
    for first in range(0, len(boxes), config.batch):
        group = boxes[first : first + config.batch]
        tiles = np.concatenate([batch[:, :, y : y + th, x : x + tw] for y, x in group])
        results = run(tiles).reshape(len(group), b, -1, th, tw)
        if out is None:
            out = np.zeros((b, results.shape[2], height, width), dtype=np.float32)
        for (y, x), result in zip(group, results):
            wy = ramp_window(th, config.overlap, y > 0, y + th < height)
            wx = ramp_window(tw, config.overlap, x > 0, x + tw < width)
            window = np.outer(wy, wx)
            out[:, :, y : y + th, x : x + tw] += result * window
            weight_sum[y : y + th, x : x + tw] += window
    assert out is not None  # internal invariant: at least one tile always exists
    return out / weight_sum
