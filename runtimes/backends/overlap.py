"""Two-slot staging so the upload of batch i+1 overlaps the inference of batch i on a CUDA device.

Two streams: a copy stream carries host->device uploads, a compute stream carries the network and the
device->host download. Each of the two slots owns pinned host buffers, a device input buffer and four
events. ``submit`` queues upload -> (compute waits for the upload's event, not for the whole device) ->
launch -> download and returns at once; ``collect`` waits on that batch's own event only. Nothing calls a
device-wide or stream-wide synchronize, so while the host decodes and uploads batch i+1 the GPU is still
busy with batch i. The same runner serves the TensorRT backend (execute_async_v3) and the ONNX Runtime
CUDA backend (I/O binding on our compute stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dehazekit.runtimes.backends.cuda_mem import D2H, H2D, PinnedBuffer
from dehazekit.runtimes.errors import BackendError

# launch(compute_stream, input_device_ptr, input_shape, output_buffer) ->
#   (output_device_ptr, output_shape, keepalive): what the network wrote, and anything that owns it.
Launch = Callable[[int, int, tuple[int, ...], PinnedBuffer], tuple[int, tuple[int, ...], Any]]


@dataclass
class CopyTimes:
    """Device-side time spent in transfers, from CUDA events (milliseconds, summed over batches)."""

    h2d_ms: float = 0.0
    d2h_ms: float = 0.0
    batches: int = 0


@dataclass
class _Slot:
    inp: PinnedBuffer
    out: PinnedBuffer
    events: dict[str, int]
    busy: bool = False  # device work queued and not yet waited for
    sequence: int = 0  # the ticket whose output this slot holds until collected
    collected: bool = True
    out_shape: tuple[int, ...] = ()
    keepalive: Any = None


@dataclass
class Ticket:
    """One submitted batch; pass it back to ``collect``."""

    slot: int
    sequence: int
    meta: dict[str, Any] = field(default_factory=dict)


class OverlappedRunner:
    """Ring of two staging slots on a copy stream and a compute stream."""

    SLOTS = 2
    EVENTS = ("h2d_start", "uploaded", "d2h_start", "done")

    def __init__(self, cuda: Any, in_dtype: np.dtype, out_dtype: np.dtype, compute_stream: int | None = None):
        self.cuda = cuda
        self.copy_stream = cuda.stream()
        self.compute_stream = compute_stream if compute_stream is not None else cuda.stream()
        self._own_compute = compute_stream is None
        self.slots = [
            _Slot(
                PinnedBuffer(cuda, in_dtype),
                PinnedBuffer(cuda, out_dtype),
                {e: cuda.event() for e in self.EVENTS},
            )
            for _ in range(self.SLOTS)
        ]
        self.times = CopyTimes()
        self._next = 0
        self._sequence = 0

    def submit(self, batch: np.ndarray, launch: Launch) -> Ticket:
        index = self._next
        slot = self.slots[index]
        if not slot.collected:
            raise BackendError.build(
                "too many batches in flight",
                got=f"{self.SLOTS + 1}",
                expected=f"at most {self.SLOTS}",
                fix="collect a batch before submitting more",
            )
        self._next = (index + 1) % self.SLOTS
        feed = np.ascontiguousarray(batch, dtype=slot.inp.dtype)
        slot.inp.ensure(feed.nbytes)
        slot.inp.host_view(feed.shape)[...] = feed
        ev = slot.events
        self.cuda.record(ev["h2d_start"], self.copy_stream)
        self.cuda.copy(slot.inp.device_ptr, slot.inp.host_ptr, feed.nbytes, H2D, self.copy_stream)
        self.cuda.record(ev["uploaded"], self.copy_stream)
        self.cuda.wait(self.compute_stream, ev["uploaded"])  # compute waits for this upload only
        out_ptr, out_shape, slot.keepalive = launch(
            self.compute_stream, slot.inp.device_ptr, feed.shape, slot.out
        )
        nbytes = int(np.prod(out_shape)) * slot.out.dtype.itemsize
        slot.out.ensure(nbytes)
        self.cuda.record(ev["d2h_start"], self.compute_stream)
        self.cuda.copy(slot.out.host_ptr, out_ptr, nbytes, D2H, self.compute_stream)
        self.cuda.record(ev["done"], self.compute_stream)
        self._sequence += 1
        slot.busy, slot.collected, slot.sequence, slot.out_shape = (
            True,
            False,
            self._sequence,
            tuple(out_shape),
        )
        return Ticket(index, self._sequence)

    def collect(self, ticket: Ticket) -> np.ndarray:
        """Wait for this batch alone and return a copy of its output (the pinned buffer is reused)."""
        slot = self.slots[ticket.slot]
        if slot.sequence != ticket.sequence or slot.collected:
            raise BackendError.build("batch already collected or unknown", got=f"ticket {ticket.sequence}")
        self._finish(slot)
        slot.collected = True
        return slot.out.host_view(slot.out_shape).astype(np.float32, copy=True)

    def _finish(self, slot: _Slot) -> None:
        if not slot.busy:
            return
        ev = slot.events
        self.cuda.event_sync(ev["done"])
        self.times.h2d_ms += self.cuda.elapsed_ms(ev["h2d_start"], ev["uploaded"])
        self.times.d2h_ms += self.cuda.elapsed_ms(ev["d2h_start"], ev["done"])
        self.times.batches += 1
        slot.busy, slot.keepalive = False, None

    def close(self) -> None:
        for slot in self.slots:
            self._finish(slot)
            slot.inp.close()
            slot.out.close()
            for event in slot.events.values():
                self.cuda.destroy_event(event)
        self.cuda.destroy(self.copy_stream)
        if self._own_compute:
            self.cuda.destroy(self.compute_stream)
