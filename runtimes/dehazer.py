"""Dehazer: the embedding API for camera pipelines.

from dehazekit.runtimes import Dehazer
with Dehazer("model.onnx", bgr=True) as dehazer:      # OpenCV frames are BGR
    clear = dehazer(frame)                              # uint8 (H, W, 3) -> same shape
    for clear in dehazer.stream(frames):                # any iterable of frames, batched inside
        ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends import Backend, open_backend
from dehazekit.runtimes.budget import (
    FALLBACK_BYTES_PER_PIXEL,
    MemoryPlan,
    default_budget,
    measure_bytes_per_pixel,
    plan_tiles,
)
from dehazekit.runtimes.errors import BackendError, ConfigError, InputError
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

THREADED = (".onnx", ".safetensors", ".pt", ".pth")  # backends whose CPU thread count we set


def _is_allocation_failure(message: str) -> bool:
    text = message.lower()
    return any(
        key in text
        for key in ("bad_alloc", "bad allocation", "failed to allocate", "out of memory", "cannot allocate")
    )


@dataclass
class PendingBatch:
    """A batch handed to the backend: its ticket and padding, or its frames when already done."""

    ticket: object
    pad: object
    done: list[np.ndarray] | None = None


class Dehazer:
    """uint8 frames in, uint8 frames out; padding, tiling and batching handled here.

    ``tile``: frames whose longer side exceeds it run as overlapping tiles (None: decided by memory).
    ``max_memory``: bytes the network's activations may take; larger frames are tiled automatically
    (same blend as ``tile``). "auto": half the memory available at start; None: never tile on its own.
    ``threads``: onnxruntime intra-op threads (None: its default). ``bgr``: frames are BGR (OpenCV).
    ``adapter``: for an adapter bank folder, the adapter to start with (switch later with ``use``).
    """

    def __init__(
        self,
        model: str | Path | Backend,
        *,
        device: str = "auto",
        providers: Sequence[str] | None = None,
        batch: int = 1,
        tile: int | None = None,
        overlap: int = 64,
        bgr: bool = False,
        max_memory: int | str | None = "auto",
        threads: int | None = None,
        adapter: str | None = None,
    ) -> None:
        if batch < 1:
            raise ConfigError.build("batch must be >= 1", got=batch)
        takes_threads = not hasattr(model, "infer") and (
            Path(model).is_dir() or Path(model).suffix.lower() in THREADED
        )
        extra: dict[str, object] = {"threads": threads} if threads and takes_threads else {}
        if adapter is not None:  # only bank folders take an adapter
            extra["adapter"] = adapter
        self.backend = (
            model
            if hasattr(model, "infer")
            else open_backend(model, device=device, providers=providers, **extra)
        )
        self.meta = self.backend.meta
        self.batch = batch
        self.bgr = bgr
        self.overlap = overlap
        self.tiles = TileConfig(tile=tile, overlap=overlap, batch=max(batch, 1)) if tile else None
        self.max_memory = default_budget() if max_memory == "auto" else max_memory
        self.bytes_per_pixel: float | None = None
        self.memory_plans: dict[tuple[int, int, int], MemoryPlan] = {}

    # --- single frames and batches -------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Same-size uint8 (H, W, 3) frames -> dehazed frames of the same size."""
        with self._memory_errors(frames):
            batch = to_model_batch(list(frames), self.meta, self.bgr)
            b, _, height, width = batch.shape
            tiles = self.tiles or self._auto_tiles(b, height, width)
            if needs_tiling(height, width, tiles):
                out = tiled_infer(batch, self._run_padded, tiles)
            else:
                out = self._run_padded(batch)
            return from_model_batch(out, self.meta, self.bgr)

    @contextmanager
    def _memory_errors(self, frames: Sequence[np.ndarray]) -> Iterator[None]:
        """An allocation failure becomes one line suggesting --tile."""
        try:
            yield
        except MemoryError as exc:
            raise self._too_large(frames, str(exc) or "MemoryError") from exc
        except BackendError as exc:
            if not _is_allocation_failure(str(exc)):
                raise
            raise self._too_large(frames, str(exc)) from exc

    def _auto_tiles(self, b: int, height: int, width: int) -> TileConfig | None:
        """Tiles when the frame's estimated activation memory exceeds ``max_memory``; probed once, lazily."""
        if self.max_memory is None or FALLBACK_BYTES_PER_PIXEL * b * height * width <= self.max_memory:
            return None  # fits even at the pessimistic per-pixel cost: no probe needed
        key = (b, height, width)
        if key not in self.memory_plans:
            if self.bytes_per_pixel is None:
                self.bytes_per_pixel = measure_bytes_per_pixel(self._run_padded)
            plan = plan_tiles(height, width, b, self.bytes_per_pixel, self.max_memory, self.overlap)
            log.info("%dx%d frames: %s", width, height, plan.describe())
            self.memory_plans[key] = plan
        tile = self.memory_plans[key].tile
        return TileConfig(tile=tile, overlap=min(self.overlap, tile // 2 - 1), batch=1) if tile else None

    def _too_large(self, frames: Sequence[np.ndarray], got: str) -> InputError:
        height, width = frames[0].shape[:2]
        side = 512 if max(height, width) > 512 else 256
        asked = re.search(r"buffer of size (\d+)", got)
        reason = f"allocating {int(asked[1]) / 1e9:.2f} GB failed" if asked else got.splitlines()[0][:120]
        return InputError.build(
            f"a {width}x{height} frame is too large for the available memory",
            got=reason,
            fix=f"pass --tile {side} (or a smaller --max-memory, or --batch 1)",
        )

    def submit_batch(self, frames: Sequence[np.ndarray]) -> PendingBatch:
        """Start dehazing same-size frames; ``collect_batch`` returns them.

        On backends that overlap transfers with compute (TensorRT, ONNX Runtime on CUDA) this returns while
        the GPU works, so the caller can decode and submit the next batch; tiled frames run synchronously.
        """
        submit = getattr(self.backend, "submit", None)
        height, width = frames[0].shape[:2]
        tiles = self.tiles or self._auto_tiles(len(frames), height, width)
        if submit is None or needs_tiling(height, width, tiles):
            return PendingBatch(ticket=None, pad=None, done=self.process_batch(frames))
        batch = to_model_batch(list(frames), self.meta, self.bgr)
        pad = plan_padding(height, width, self.meta)
        with self._memory_errors(frames):
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
            raise ConfigError.build(
                "this model is not an adapter bank",
                got=self.backend.name,
                fix="open a folder written by `dehazekit bank build`",
            )
        self.backend.use(adapter)

    # --- lifecycle -----------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        info = dict(self.backend.describe())
        if self.tiles is not None:
            info["tiling"] = f"tiles of {self.tiles.tile} px (--tile)"
        elif self.memory_plans:
            info["tiling"] = "; ".join(plan.describe() for plan in self.memory_plans.values())
        return info

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Dehazer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
