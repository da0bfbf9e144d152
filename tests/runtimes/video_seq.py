"""Synthetic video sequences with known flicker and motion, for stabiliser and flicker-metric tests."""

from __future__ import annotations

import numpy as np


def static_scene(
    count: int = 30, height: int = 48, width: int = 64, noise: float = 1.0, seed: int = 0
) -> list[np.ndarray]:
    """A fixed textured scene with a little sensor noise (std ``noise`` grey levels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    scene = 90 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] + np.array([10.0, 0.0, -10.0])
    return [np.clip(scene + rng.normal(0, noise, scene.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def flickering_model(frames: list[np.ndarray], amplitude: float = 12.0, seed: int = 1) -> list[np.ndarray]:
    """A 'dehazer' that stretches contrast and adds a random global gain/offset every frame (flicker)."""
    rng = np.random.default_rng(seed)
    outs = []
    for frame in frames:
        offset = rng.uniform(-amplitude, amplitude, size=3)
        outs.append(np.clip(1.3 * (frame.astype(np.float32) - 128) + 128 + offset, 0, 255).astype(np.uint8))
    return outs


def moving_square(count: int = 20, height: int = 48, width: int = 96, step: int = 4) -> list[np.ndarray]:
    """Grey background with a bright square moving right by ``step`` px per frame."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 80, np.uint8)
        x0 = 4 + i * step
        frame[16:32, x0 : x0 + 16] = 230
        frames.append(frame)
    return frames
