"""The threaded pipeline: decode thread -> bounded queue -> batcher + inference -> bounded queue ->
encode thread.

Decoding and encoding run beside inference (PyAV, Pillow and onnxruntime release the GIL), the
bounded queues give back-pressure so memory stays flat however long the video is, and any error or
Ctrl-C stops all three stages and aborts the sink so no partial output is left behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dehazekit.runtimes.dehazer import Dehazer
from dehazekit.runtimes.errors import ConfigError, InputError
from dehazekit.runtimes.frames import FrameItem, Skipped

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker passed through both queues
POLL_S = 0.1  # how often a blocked stage checks whether it should stop


@dataclass
class RunReport:
    """What a run did: frames, time, rate, backend, and every input item it had to skip."""

    frames: int = 0
    seconds: float = 0.0
    infer_seconds: float = 0.0
    backend: dict[str, object] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    output: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.infer_seconds if self.infer_seconds > 0 else 0.0


class _Worker(threading.Thread):
    """A stage thread that records its exception instead of printing it."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._body, self._stop_event = target, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.error = exc
            self._stop_event.set()  # unblocks the other stages at their next queue poll


class Pipeline:
    """Runs ``source`` through ``dehazer`` into ``sink``; ``on_frame(report)`` is called per written frame."""

    def __init__(
        self,
        dehazer: Dehazer,
        *,
        queue_size: int | None = None,
        on_frame: Callable[[RunReport], None] | None = None,
    ) -> None:
        size = queue_size or 2 * dehazer.batch + 2
        if size < 1:
            raise ConfigError.build("queue size must be >= 1", got=size)
        self.dehazer, self.on_frame = dehazer, on_frame
        self.inbox: queue.Queue = queue.Queue(maxsize=size)
        self.outbox: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.report = RunReport(backend=dehazer.describe())

    # --- blocking queue ops that give up when another stage failed ----------------------------
    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return _END

    # --- stages -------------------------------------------------------------------------------
    def _decode(self, source: Any) -> None:
        try:
            for item in source:
                if not self._put(self.inbox, item):
                    return
        finally:
            self._put(self.inbox, _END)

    def _encode(self, sink: Any) -> None:
        while True:
            got = self._get(self.outbox)
            if got is _END:
                return
            item, frame = got
            sink.write(item, frame)
            self.report.frames += 1
            if self.on_frame:
                self.on_frame(self.report)

    def _infer_loop(self) -> None:
        """Gather up to ``batch`` same-size frames, dehaze them, pass them on in order.

        One batch stays in flight: batch i+1 is submitted before batch i is collected, so on backends that
        overlap transfers with compute the GPU never waits for the host to prepare the next batch.
        """
        held, in_flight = None, None
        while True:
            group, held = self._gather(held)
            if group:
                start = time.perf_counter()
                submitted = (group, self.dehazer.submit_batch([item.image for item in group]))
                self.report.infer_seconds += time.perf_counter() - start
                if in_flight is not None and not self._emit(*in_flight):
                    return
                in_flight = submitted
            if held is _END or not group:
                if in_flight is not None:
                    self._emit(*in_flight)
                return

    def _gather(self, held: Any) -> tuple[list[FrameItem], Any]:
        """(up to ``batch`` same-size frames, the item that closed the group: next size or _END)."""
        first = held if held is not None else self._get(self.inbox)
        if first is _END:
            return [], _END
        group: list[FrameItem] = [first]
        while len(group) < self.dehazer.batch:
            nxt = self._get(self.inbox)
            if nxt is _END or nxt.image.shape != first.image.shape:
                return group, nxt  # a size change (or the end) closes this batch
            group.append(nxt)
        return group, None

    def _emit(self, group: list[FrameItem], pending: Any) -> bool:
        start = time.perf_counter()
        outputs = self.dehazer.collect_batch(pending)
        self.report.infer_seconds += time.perf_counter() - start
        return all(self._put(self.outbox, (item, out)) for item, out in zip(group, outputs))

    # --- orchestration ------------------------------------------------------------------------
    def run(self, source: Any, sink: Any) -> RunReport:
        start = time.perf_counter()
        decoder = _Worker("dehazekit-decode", lambda: self._decode(source), self.stop)
        encoder = _Worker("dehazekit-encode", lambda: self._encode(sink), self.stop)
        decoder.start()
        encoder.start()
        try:
            self._infer_loop()
            self._put(self.outbox, _END)
            self._join(encoder, decoder)
            self._raise_stage_errors(decoder, encoder)
            if self.report.frames == 0:
                reasons = [f"{s.item}: {s.reason}" for s in source.skipped.entries[:5]]
                raise InputError.build(
                    "no frames could be read from the input",
                    got=source.info.description,
                    expected=">= 1 decodable frame",
                    fix="; ".join(reasons) or None,
                )
            sink.close()
        except BaseException:  # includes KeyboardInterrupt: stop every stage, leave nothing half-written
            self.stop.set()
            self._join(encoder, decoder)
            sink.abort()
            raise
        finally:
            source.close()
            self.report.skipped = list(source.skipped.entries)
            self.report.seconds = time.perf_counter() - start
        return self.report

    @staticmethod
    def _join(*workers: _Worker) -> None:
        for worker in workers:
            while worker.is_alive():  # short joins so Ctrl-C still reaches the main thread
                worker.join(timeout=POLL_S)

    @staticmethod
    def _raise_stage_errors(*workers: _Worker) -> None:
        for worker in workers:
            if worker.error is not None:
                raise worker.error


def run_pipeline(source: Any, sink: Any, dehazer: Dehazer, **kwargs: Any) -> RunReport:
    """One call: ``Pipeline(dehazer, **kwargs).run(source, sink)``."""
    return Pipeline(dehazer, **kwargs).run(source, sink)
