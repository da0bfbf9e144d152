"""Dehazer: the embedding API for camera pipelines.

    from dehazekit.runtimes import Dehazer
    with Dehazer("model.onnx", bgr=True) as dehazer:      # OpenCV frames are BGR
        clear = dehazer(frame)                              # uint8 (H, W, 3) -> same shape
        for clear in dehazer.stream(frames):                # any iterable of frames, batched inside
            ...
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends import Backend, open_backend
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.processing import (
    check_frame,
    crop_batch,
    from_layout,
    from_model_batch,
    pad_batch,
    plan_padding,
    to_layout,
    to_model_batch,
)
from dehazekit.runtimes.tiling import TileConfig, needs_tiling, tiled_infer

log = logging.getLogger(__name__)


@dataclass
class PendingBatch:
    """A batch handed to the backend: its ticket and padding, or its frames when already done."""

    ticket: object
    pad: object
    done: list[np.ndarray] | None = None


class Dehazer:
    """uint8 frames in, uint8 frames out; padding, tiling and batching handled here.

    ``tile``: frames whose longer side exceeds it run as overlapping tiles (None: always whole).
    ``bgr``: frames are BGR (OpenCV) rather than RGB.
    ``adapter``: for an adapter bank folder, the adapter to start with (switch later with ``use``).
    """

    def __init__(self, model: str | Path | Backend, *, device: str = "auto",
                 providers: Sequence[str] | None = None, batch: int = 1, tile: int | None = None,
                 overlap: int = 64, bgr: bool = False, adapter: str | None = None) -> None:
        if batch < 1:
            raise ConfigError.build("batch must be >= 1", got=batch)
        extra = {"adapter": adapter} if adapter is not None else {}  # only bank folders take an adapter
        self.backend = (model if hasattr(model, "infer")
                        else open_backend(model, device=device, providers=providers, **extra))
        self.meta = self.backend.meta
        self.batch = batch
        self.bgr = bgr
        self.tiles = TileConfig(tile=tile, overlap=overlap, batch=max(batch, 1)) if tile else None

    # --- single frames and batches -------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Same-size uint8 (H, W, 3) frames -> dehazed frames of the same size."""
        batch = to_model_batch(list(frames), self.meta, self.bgr)
        _, _, height, width = batch.shape
        if needs_tiling(height, width, self.tiles):
            out = tiled_infer(batch, self._run_padded, self.tiles)
        else:
            out = self._run_padded(batch)
        return from_model_batch(out, self.meta, self.bgr)

    def submit_batch(self, frames: Sequence[np.ndarray]) -> PendingBatch:
        """Start dehazing same-size frames; ``collect_batch`` returns them.

        On backends that overlap transfers with compute (TensorRT, ONNX Runtime on CUDA) this returns while
        the GPU works, so the caller can decode and submit the next batch; tiled frames run synchronously.
        """
        submit = getattr(self.backend, "submit", None)
        batch = to_model_batch(list(frames), self.meta, self.bgr)
        tiled = needs_tiling(batch.shape[2], batch.shape[3], self.tiles)
        if submit is None or tiled:
            out = tiled_infer(batch, self._run_padded, self.tiles) if tiled else self._run_padded(batch)
            return PendingBatch(ticket=None, pad=None, done=from_model_batch(out, self.meta, self.bgr))
        pad = plan_padding(batch.shape[2], batch.shape[3], self.meta)
        return PendingBatch(ticket=submit(to_layout(pad_batch(batch, pad), self.meta)), pad=pad)

    def collect_batch(self, pending: PendingBatch) -> list[np.ndarray]:
        if pending.done is not None:
            return pending.done
        out = crop_batch(from_layout(self.backend.collect(pending.ticket), self.meta), pending.pad)
        return from_model_batch(out, self.meta, self.bgr)

    def _run_padded(self, batch: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float -> network output cropped back to (B, C, H, W)."""
        pad = plan_padding(batch.shape[2], batch.shape[3], self.meta)
        out = self.backend.infer(to_layout(pad_batch(batch, pad), self.meta))
        return crop_batch(from_layout(out, self.meta), pad)

    # --- streams -------------------------------------------------------------------------------
    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Yield one dehazed frame per input frame, in order; same-size runs are batched."""
        pending: list[np.ndarray] = []
        for frame in frames:
            check_frame(frame)
            if pending and frame.shape != pending[0].shape:
                yield from self.process_batch(pending)
                pending = []
            pending.append(frame)
            if len(pending) >= self.batch:  # flush at once: a live camera must not wait for the next frame
                yield from self.process_batch(pending)
                pending = []
        if pending:
            yield from self.process_batch(pending)

    # --- adapter banks -------------------------------------------------------------------------
    def use(self, adapter: str) -> None:
        """Switch a bank model to ``adapter`` for the next frames (no reload; see runtimes.bank)."""
        if not hasattr(self.backend, "use"):
            raise ConfigError.build("this model is not an adapter bank", got=self.backend.name,
                                    fix="open a folder written by `dehazekit bank build`")
        self.backend.use(adapter)

    # --- lifecycle -----------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        return self.backend.describe()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Dehazer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
