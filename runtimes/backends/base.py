"""The Backend protocol every runtime backend follows, and the input checks they share.

A backend runs one network on one device. It takes (B, C, H, W) float32 batches already padded to the
model's multiple (pre/post-processing lives in dehazekit.runtimes.processing, in numpy, never in the
graph) and returns a batch of the same layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)

# Inputs may overshoot the declared range by rounding; anything beyond this is a caller bug
# (e.g. uint8 values passed as float), which would otherwise produce silent garbage.
RANGE_TOLERANCE = 1e-3


@runtime_checkable
class Backend(Protocol):
    """What runtimes needs from a backend.

    ``infer`` takes (B, C, H, W) float32 in ``meta.value_range`` (NCHW unless ``meta.layout`` says
    NHWC) and returns the network output in the same layout, float32.
    """

    meta: ModelMeta
    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, object]: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class _Ready:
    output: np.ndarray


class BaseBackend:
    """Shared plumbing: context manager, input validation, a readable description."""

    name = "base"
    channels = 3

    def __init__(self, meta: ModelMeta) -> None:
        self.meta = meta
        self._closed = False

    # --- protocol ------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise InputError.build(f"{self.name} backend is closed", fix="open the model again")
        self.validate(batch)
        return self._infer(batch)

    def _infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def submit(self, batch: np.ndarray) -> object:
        """Queue a batch and return a ticket for ``collect``.

        Backends that overlap transfers with compute (TensorRT, ONNX Runtime on CUDA) return before the
        batch is done, so the caller can prepare and submit the next one; the rest compute here.
        """
        return _Ready(self.infer(batch))

    def collect(self, ticket: object) -> np.ndarray:
        """The output of a submitted batch, waiting for it if needed."""
        if not isinstance(ticket, _Ready):
            raise InputError.build(
                "unknown ticket", got=type(ticket).__name__, expected="a ticket from submit()"
            )
        return ticket.output

    def close(self) -> None:
        self._closed = True

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "providers": [], "backbone": self.meta.backbone}

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- checks --------------------------------------------------------------------------------
    def validate(self, batch: np.ndarray) -> None:
        """Reject what the network would silently misread: wrong type, rank, channels or range."""
        if not isinstance(batch, np.ndarray):
            raise InputError.build(
                "model input must be a numpy array",
                got=type(batch).__name__,
                expected="np.ndarray (B, C, H, W) float32",
            )
        if batch.dtype != np.float32:
            raise InputError.build(
                "model input has the wrong dtype",
                got=str(batch.dtype),
                expected="float32",
                fix="use dehazekit.runtimes.processing.to_model_batch on uint8 frames",
            )
        if batch.ndim != 4:
            raise InputError.build(
                "model input has the wrong rank", got=f"shape {batch.shape}", expected="4-D (B, C, H, W)"
            )
        channel_axis = 3 if self.meta.layout == "NHWC" else 1
        if batch.shape[channel_axis] != self.channels:
            raise InputError.build(
                "model input has the wrong number of channels",
                got=f"{batch.shape[channel_axis]} (shape {batch.shape})",
                expected=f"{self.channels} ({self.meta.layout})",
            )
        if 0 in batch.shape:
            raise InputError.build("model input is empty", got=f"shape {batch.shape}")
        self._check_range(batch)

    def _check_range(self, batch: np.ndarray) -> None:
        if self.meta.mean is not None or self.meta.std is not None:
            return  # normalised inputs have no fixed range
        low, high = self.meta.value_range
        lo, hi = float(batch.min()), float(batch.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise InputError.build("model input contains NaN or Inf", got=f"min {lo}, max {hi}")
        if lo < low - RANGE_TOLERANCE or hi > high + RANGE_TOLERANCE:
            raise InputError.build(
                "model input is outside the model's value range",
                got=f"[{lo:.4g}, {hi:.4g}]",
                expected=f"[{low}, {high}]",
                fix="scale uint8 frames by 1/255 (dehazekit.runtimes.processing.to_model_batch)",
            )
