"""Overlapped staging (TensorRT / ONNX Runtime CUDA) and the pipeline's one-batch lookahead.

CUDA cannot run here, so the runner is driven through a host-memory stand-in of the few CUDA runtime calls
it makes (the same interface cuda_mem gives on a GPU): copies are real memmoves, and every call is logged so
the tests check what makes the overlap correct: the compute stream waits for its own upload's event, the
download is queued behind the kernels, ``collect`` waits for one event, nothing synchronises a whole stream.
The real GPU run is the gpu-marked test at the end and benchmarks/gpu.py.
"""

from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.backends.overlap import OverlappedRunner
from dehazekit.runtimes.errors import BackendError
from dehazekit.runtimes.meta import ModelMeta


class HostCuda:
    """The CUDA runtime calls of cuda_mem, on host memory, executed at once, logged."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.memory: dict[int, ctypes.Array] = {}
        self.log: list[tuple] = []

    def _alloc(self, nbytes: int) -> int:
        buf = (ctypes.c_byte * nbytes)()
        self.memory[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    malloc = malloc_host = _alloc

    def free(self, ptr: int) -> None:
        self.memory.pop(ptr)

    free_host = free

    def stream(self) -> int:
        return next(self.ids)

    event = stream

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        ctypes.memmove(dst, src, nbytes)
        self.log.append(("copy", "H2D" if kind == 1 else "D2H", stream))

    def record(self, event: int, stream: int) -> None:
        self.log.append(("record", event, stream))

    def wait(self, stream: int, event: int) -> None:
        self.log.append(("wait", stream, event))

    def event_sync(self, event: int) -> None:
        self.log.append(("event_sync", event))

    def elapsed_ms(self, start: int, end: int) -> float:
        return 0.25

    def sync(self, stream: int) -> None:  # a stream-wide sync: the runner must never need it
        self.log.append(("sync", stream))

    def destroy(self, stream: int) -> None:
        self.log.append(("destroy", stream))

    destroy_event = destroy


def doubling_launch(cuda: HostCuda):
    """A 'network' that writes 2 * input into the output buffer's device memory, logging its launch."""

    def launch(stream, in_ptr, shape, out):
        count = int(np.prod(shape))
        out.ensure(count * 4)
        src = np.frombuffer((ctypes.c_float * count).from_address(in_ptr), dtype=np.float32)
        dst = np.frombuffer((ctypes.c_float * count).from_address(out.device_ptr), dtype=np.float32)
        dst[:] = 2 * src
        cuda.log.append(("launch", stream))
        return out.device_ptr, tuple(shape), None

    return launch


def batches(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((1, 3, 4, 5), dtype=np.float32) for _ in range(n)]


def test_outputs_come_back_in_order_through_the_two_slot_ring():
    cuda = HostCuda()
    runner = OverlappedRunner(cuda, np.float32, np.float32)
    launch, data, results = doubling_launch(cuda), batches(5), []
    pending = runner.submit(data[0], launch)
    for batch in data[1:]:
        nxt = runner.submit(batch, launch)  # batch i+1 goes in before batch i is collected
        results.append(runner.collect(pending))
        pending = nxt
    results.append(runner.collect(pending))
    for got, batch in zip(results, data):
        np.testing.assert_array_equal(got, 2 * batch)
    assert runner.times.batches == 5 and runner.times.h2d_ms == pytest.approx(5 * 0.25)


def test_each_launch_waits_for_its_own_upload_and_nothing_syncs_a_stream():
    cuda = HostCuda()
    runner = OverlappedRunner(cuda, np.float32, np.float32)
    ticket = runner.submit(batches(1)[0], doubling_launch(cuda))
    events = runner.slots[ticket.slot].events
    copy_s, compute_s = runner.copy_stream, runner.compute_stream
    assert copy_s != compute_s
    assert cuda.log == [
        ("record", events["h2d_start"], copy_s),
        ("copy", "H2D", copy_s),
        ("record", events["uploaded"], copy_s),
        ("wait", compute_s, events["uploaded"]),
        ("launch", compute_s),
        ("record", events["d2h_start"], compute_s),
        ("copy", "D2H", compute_s),
        ("record", events["done"], compute_s),
    ]
    runner.collect(ticket)
    assert cuda.log[-1] == ("event_sync", events["done"])
    assert not any(entry[0] == "sync" for entry in cuda.log)


def test_a_third_batch_in_flight_or_a_double_collect_is_refused():
    cuda = HostCuda()
    runner = OverlappedRunner(cuda, np.float32, np.float32)
    launch, data = doubling_launch(cuda), batches(3)
    first = runner.submit(data[0], launch)
    runner.submit(data[1], launch)
    with pytest.raises(BackendError, match="in flight"):
        runner.submit(data[2], launch)
    runner.collect(first)
    with pytest.raises(BackendError, match="already collected"):
        runner.collect(first)
    runner.submit(data[2], launch)  # the freed slot takes it


def test_close_frees_every_buffer_and_event():
    cuda = HostCuda()
    runner = OverlappedRunner(cuda, np.float32, np.float32)
    runner.collect(runner.submit(batches(1)[0], doubling_launch(cuda)))
    runner.close()
    assert cuda.memory == {}
    destroyed = [e[1] for e in cuda.log if e[0] == "destroy"]
    assert len(destroyed) == 2 * len(OverlappedRunner.EVENTS) + 2


class DeferredBackend(BaseBackend):
    """Computes a batch only when it is collected, like a GPU backend; logs the order of calls."""

    name = "deferred"

    def __init__(self) -> None:
        super().__init__(ModelMeta(backbone="identity"))
        self.calls: list[tuple[str, int]] = []
        self.count = 0

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return 1.0 - batch

    def submit(self, batch: np.ndarray) -> object:
        self.count += 1
        self.calls.append(("submit", self.count))
        return self.count, batch

    def collect(self, ticket: object) -> np.ndarray:
        number, batch = ticket
        self.calls.append(("collect", number))
        return self._infer(batch)


def test_the_pipeline_submits_the_next_batch_before_collecting_the_last():
    from dehazekit.runtimes import Dehazer, open_sink, open_source
    from dehazekit.runtimes.pipeline import run_pipeline

    frames = [np.full((6, 8, 3), 10 * i, dtype=np.uint8) for i in range(4)]
    backend, written = DeferredBackend(), []
    source = open_source(iter(frames))
    report = run_pipeline(
        source, open_sink(lambda item, frame: written.append(frame), source), Dehazer(backend)
    )
    assert report.frames == 4
    assert backend.calls == [
        ("submit", 1),
        ("submit", 2),
        ("collect", 1),
        ("submit", 3),
        ("collect", 2),
        ("submit", 4),
        ("collect", 3),
        ("collect", 4),
    ]
    for frame, out in zip(frames, written):
        np.testing.assert_array_equal(out, 255 - frame)


@pytest.mark.gpu
def test_onnxruntime_cuda_io_binding_matches_the_cpu_provider(tiny_onnx):
    from dehazekit.runtimes.backends.onnx_backend import OnnxBackend

    x = np.random.default_rng(0).random((2, 3, 32, 48), dtype=np.float32)
    with OnnxBackend(tiny_onnx, device="cpu") as cpu, OnnxBackend(tiny_onnx, device="cuda") as gpu:
        assert gpu.cuda_io is not None, "CUDA provider present but the I/O-binding path is off"
        tickets = [gpu.submit(x), gpu.submit(x[::-1].copy())]
        outs = [gpu.collect(t) for t in tickets]
        np.testing.assert_allclose(outs[0], cpu.infer(x), atol=1e-4)
        np.testing.assert_allclose(outs[1], cpu.infer(x[::-1].copy()), atol=1e-4)
        assert gpu.cuda_io.runner.times.batches == 2
