"""Temporal stabiliser for video: an EMA of the low-frequency part of what the model changed.

A per-frame dehazer re-estimates haze on every frame, so where nothing moves its output still
pumps in brightness and colour (flicker). The correction is taken out of the residual
``r_t = output_t - input_t``, which is what the network decided about haze; the input's own
changes (motion, exposure) pass through untouched.

Per frame (uint8 (H, W, 3), either channel order; numpy only, streaming, no look-ahead):

1. ``R_t``: the residual averaged over a coarse grid of cells (per channel), ``X_t`` the input likewise.
2. Per cell, how much the input moved: ``d = mean_c |X_t - X_{t-1}|``. The EMA gain is
   ``k = 1 - alpha * clip(1 - d / motion, 0, 1)``: static cells keep ``alpha`` of the history,
   moving cells follow the current frame at once (k = 1), so moving things leave no ghosts.
3. Scene cut (mean ``d`` over cells > ``cut``) or a size change: the history restarts at ``R_t``.
4. ``S_t = S_{t-1} + k (R_t - S_{t-1})``; the output becomes ``output_t + up(S_t - R_t)`` with ``up``
   bilinear, so only the low-frequency part of the frame changes; details stay the model's.

Cost: two block means and one bilinear upsample per frame, a few ms at 720p (measured in
benchmarks/video_stability.py), far below a dehazing network's time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StabilizerConfig:
    """``alpha``: history kept per static frame (0 = off). ``cells``: grid cells along the longer side.
    ``motion``/``cut``: mean abs input change (0..1 scale) of a cell / of the whole frame at which a
    cell counts as moving / the frame as a scene cut.

    Defaults from benchmarks/video_stability.py on the real fog clips: a larger ``motion`` (more cells
    smoothed) removes more flicker but also part of the model's dehazing of slowly moving content,
    which FADE sees (motion 0.1, cells 60: highway FADE +14%); 0.01 keeps FADE within 2%."""

    alpha: float = 0.95
    cells: int = 24
    motion: float = 0.01
    cut: float = 0.12

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError.build("stabiliser alpha must be in [0, 1)", got=self.alpha)
        if self.cells < 1:
            raise ConfigError.build("stabiliser cells must be >= 1", got=self.cells)
        if not (self.motion > 0 and self.cut > 0):
            raise ConfigError.build(
                "stabiliser motion and cut thresholds must be > 0", got=(self.motion, self.cut)
            )


def _cell_means(frame: np.ndarray, cell: int) -> np.ndarray:
    """(H, W, C) -> (ceil(H/cell), ceil(W/cell), C) float32 means; edge cells use the pixels they have."""
    h, w, c = frame.shape
    gh = -(-h // cell)
    sums = np.zeros((gh, w, c), dtype=np.float32)
    np.add.reduceat(frame, np.arange(0, h, cell), axis=0, out=sums, dtype=np.float32)
    sums = np.add.reduceat(sums, np.arange(0, w, cell), axis=1)
    rows = np.minimum(cell, h - np.arange(0, h, cell)).astype(np.float32)
    cols = np.minimum(cell, w - np.arange(0, w, cell)).astype(np.float32)
    return sums / (rows[:, None, None] * cols[None, :, None])


def _interp_axis(size: int, cell: float, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis: pixel centres mapped onto cell centres (clamped at the edges)."""
    pos = (np.arange(size, dtype=np.float32) + 0.5) / cell - 0.5
    pos = np.clip(pos, 0, cells - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, cells - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def upsample(grid: np.ndarray, height: int, width: int, cell: float) -> np.ndarray:
    """(gh, gw, C) cell values -> (height, width, C) bilinear field."""
    r0, r1, rw = _interp_axis(height, cell, grid.shape[0])
    c0, c1, cw = _interp_axis(width, cell, grid.shape[1])
    rows = grid[r0] * (1 - rw)[:, None, None] + grid[r1] * rw[:, None, None]
    return rows[:, c0] * (1 - cw)[None, :, None] + rows[:, c1] * cw[None, :, None]


def _apply(out: np.ndarray, grid: np.ndarray, cell: int) -> np.ndarray:
    """out + bilinear(grid), in whole grey levels. The smooth field is interpolated on a grid
    ``cell // 8`` times coarser than the frame and repeated: its slope is a fraction of a level per
    pixel, so the steps are invisible, and the full-size work is one integer add."""
    h, w = out.shape[:2]
    sub = max(1, cell // 8)
    field = upsample(grid, -(-h // sub), -(-w // sub), cell / sub)
    field = np.rint(field).astype(np.int16)
    if sub > 1:
        field = field.repeat(sub, axis=0).repeat(sub, axis=1)[:h, :w]
    result = out.astype(np.int16)
    result += field
    np.clip(result, 0, 255, out=result)
    return result.astype(np.uint8)


class Stabilizer:
    """Stateful, one instance per stream: ``step(input, output) -> stabilised output`` in frame order."""

    def __init__(self, config: StabilizerConfig | None = None) -> None:
        self.config = config or StabilizerConfig()
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None
        self._prev_in: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def step(self, inp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) input and model output -> stabilised uint8 (H, W, 3); inputs are not modified."""
        cfg = self.config
        if cfg.alpha == 0.0:
            return out
        h, w = inp.shape[:2]
        # Cell means from every ``stride``-th pixel: the statistics are of 20-50 px cells, so a sparse
        # sample estimates them as well as all pixels, at a fraction of the memory traffic.
        stride = max(1, -(-max(h, w) // cfg.cells) // 16)
        cell = max(1, -(-max(h, w) // (cfg.cells * stride)))
        x = _cell_means(inp[::stride, ::stride], cell) * np.float32(1 / 255)
        r = _cell_means(out[::stride, ::stride], cell) * np.float32(1 / 255) - x
        if self._state is None or inp.shape != self._shape:
            self._restart(x, r, inp.shape)
            return out
        d = np.abs(x - self._prev_in).mean(axis=2, keepdims=True)
        if float(d.mean()) > cfg.cut:
            self.cuts += 1
            log.debug("scene cut (mean input change %.3f): stabiliser history restarts", float(d.mean()))
            self._restart(x, r, inp.shape)
            return out
        gain = 1.0 - cfg.alpha * np.clip(1.0 - d / cfg.motion, 0.0, 1.0)
        self._state += gain * (r - self._state)
        self._prev_in = x
        return _apply(out, (self._state - r) * np.float32(255), cell * stride)

    def _restart(self, x: np.ndarray, r: np.ndarray, shape: tuple[int, ...]) -> None:
        self._state, self._prev_in, self._shape = r.copy(), x, shape


class StabilizedDehazer:
    """Wraps a Dehazer (any backend) so every processed batch is stabilised in frame order.

    Exposes what the pipeline uses (``process_batch``, ``batch``, ``meta``, ``describe``, ``close``);
    everything else is forwarded to the wrapped dehazer.
    """

    def __init__(self, dehazer: Any, config: StabilizerConfig | None = None) -> None:
        self.dehazer = dehazer
        self.stabilizer = Stabilizer(config)

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        outputs = self.dehazer.process_batch(frames)
        return [self.stabilizer.step(f, o) for f, o in zip(frames, outputs)]

    def submit_batch(self, frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], Any]:
        # The pipeline keeps one batch in flight and collects in order, so stabilising at collect time
        # still sees the frames in stream order.
        return list(frames), self.dehazer.submit_batch(frames)

    def collect_batch(self, pending: tuple[list[np.ndarray], Any]) -> list[np.ndarray]:
        frames, inner = pending
        outputs = self.dehazer.collect_batch(inner)
        return [self.stabilizer.step(f, o) for f, o in zip(frames, outputs)]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.process_batch([frame])[0]

    def describe(self) -> dict[str, object]:
        return {**self.dehazer.describe(), "stabilize": vars(self.stabilizer.config)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dehazer, name)

    def __enter__(self) -> StabilizedDehazer:  # noqa: PYI034 - a plain class, not meant for subclassing
        return self

    def __exit__(self, *exc: object) -> None:
        self.dehazer.close()
