"""Temporal flicker of a dehazed video, measured against its input.

For consecutive frames t-1, t of the input ``I`` and output ``O`` (uint8 RGB, same size), both are
turned into luma (BT.601, in [0, 1]) and box-averaged over ``block`` x ``block`` pixels (``b``), so that
per-pixel sensor/codec noise, which is not flicker, does not dominate; ``block=1`` keeps pixels.

    static_t   = { p : |b(I_t)(p) - b(I_{t-1})(p)| < tau }          the input barely changes there
    change_in  = sum_t sum_{p in static_t} |b(I_t) - b(I_{t-1})|
    change_out = sum_t sum_{p in static_t} |b(O_t) - b(O_{t-1})|
    ratio      = change_out / max(change_in, eps)                    the ``flicker`` number; lower is better

``ratio`` = 1 means the output changes exactly as much as the input does where nothing moves; a
per-frame dehazer that amplifies contrast or re-estimates its global haze parameters every frame
gives ratio > 1. Two absolute numbers come with it: ``static_change_out`` (mean |change| per static
pixel, on the 0..1 scale) and the temporal std of global brightness, ``brightness_std`` =
std_t(mean_p luma(O_t)), beside the same for the input. ``tau`` defaults to 0.02 (about 5/255).
Everything runs in numpy on CPU and streams: memory is one previous frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dehazekit.runtimes.errors import ConfigError, InputError

STATIC_TAU = 0.02
BLOCK = 8
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_EPS = 1e-12


def luma_blocks(frame: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H // block, W // block) float64 mean luma per block, in [0, 1]."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError.build(
            "flicker needs uint8 RGB frames", got=f"{frame.dtype} {frame.shape}", expected="uint8 (H, W, 3)"
        )
    y = frame.astype(np.float32) @ (_LUMA / 255.0)
    h, w = (y.shape[0] // block) * block, (y.shape[1] // block) * block
    if h == 0 or w == 0:
        raise InputError.build(
            "frame smaller than the flicker block", got=frame.shape[:2], expected=f">= {block}"
        )
    return y[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3), dtype=np.float64)


@dataclass
class FlickerMeter:
    """Feed (input, output) frame pairs in order with ``update``; ``result()`` gives the numbers."""

    block: int = BLOCK
    tau: float = STATIC_TAU
    change_in: float = 0.0
    change_out: float = 0.0
    static_pixels: int = 0
    total_pixels: int = 0
    bright_in: list[float] = field(default_factory=list)
    bright_out: list[float] = field(default_factory=list)
    _prev: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.block < 1 or not self.tau > 0:
            raise ConfigError.build("flicker block must be >= 1 and tau > 0", got=(self.block, self.tau))

    def update(self, inp: np.ndarray, out: np.ndarray) -> None:
        if inp.shape != out.shape:
            raise InputError.build("input and output frames differ in size", got=(inp.shape, out.shape))
        a, b = luma_blocks(inp, self.block), luma_blocks(out, self.block)
        self.bright_in.append(float(a.mean()))
        self.bright_out.append(float(b.mean()))
        if self._prev is not None and self._prev[0].shape == a.shape:
            d_in = np.abs(a - self._prev[0])
            static = d_in < self.tau
            self.change_in += float(d_in[static].sum())
            self.change_out += float(np.abs(b - self._prev[1])[static].sum())
            self.static_pixels += int(static.sum())
            self.total_pixels += static.size
        self._prev = (a, b)

    def result(self) -> dict[str, float]:
        """ratio, static_change_in/out, static_fraction, brightness_std_in/out, frames."""
        n = max(self.static_pixels, 1)
        return {
            "ratio": self.change_out / max(self.change_in, _EPS),
            "static_change_in": self.change_in / n,
            "static_change_out": self.change_out / n,
            "static_fraction": self.static_pixels / max(self.total_pixels, 1),
            "brightness_std_in": float(np.std(self.bright_in)) if self.bright_in else 0.0,
            "brightness_std_out": float(np.std(self.bright_out)) if self.bright_out else 0.0,
            "frames": len(self.bright_out),
            "block": self.block,
            "tau": self.tau,
        }


def flicker(
    inputs: list[np.ndarray], outputs: list[np.ndarray], block: int = BLOCK, tau: float = STATIC_TAU
) -> dict[str, float]:
    """Flicker of ``outputs`` relative to ``inputs`` (equal-length lists of uint8 RGB frames)."""
    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise InputError.build(
            "flicker needs two equal sequences of >= 2 frames", got=(len(inputs), len(outputs))
        )
    meter = FlickerMeter(block=block, tau=tau)
    for a, b in zip(inputs, outputs):
        meter.update(a, b)
    return meter.result()
