"""Minimal CUDA runtime calls for the TensorRT and ONNX Runtime CUDA backends, without torch.

Two providers of the same few calls: cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` in
older releases) and polygraphy's ctypes handle on libcudart. Pinned (page-locked) host buffers are
used so host<->device copies are truly asynchronous on the backend's stream.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import BackendError, missing_dependency

H2D, D2H = 1, 2  # cudaMemcpyKind values (stable across CUDA versions)


def _cuda_python() -> Any | None:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            return None
    return cudart


class _CudaPython:
    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def _call(self, what: str, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise BackendError.build(f"CUDA call {what} failed", got=f"error {int(err)} ({err})")
        return rest[0] if rest else None

    def stream(self) -> int:
        return int(self._call("cudaStreamCreate", self.rt.cudaStreamCreate()))

    def malloc(self, nbytes: int) -> int:
        return int(self._call("cudaMalloc", self.rt.cudaMalloc(nbytes)))

    def malloc_host(self, nbytes: int) -> int:
        return int(self._call("cudaMallocHost", self.rt.cudaMallocHost(nbytes)))

    def free(self, ptr: int) -> None:
        self._call("cudaFree", self.rt.cudaFree(ptr))

    def free_host(self, ptr: int) -> None:
        self._call("cudaFreeHost", self.rt.cudaFreeHost(ptr))

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._call(
            "cudaMemcpyAsync", self.rt.cudaMemcpyAsync(dst, src, nbytes, self.rt.cudaMemcpyKind(kind), stream)
        )

    def sync(self, stream: int) -> None:
        self._call("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    def destroy(self, stream: int) -> None:
        self._call("cudaStreamDestroy", self.rt.cudaStreamDestroy(stream))

    def event(self) -> int:
        return int(self._call("cudaEventCreate", self.rt.cudaEventCreate()))

    def record(self, event: int, stream: int) -> None:
        self._call("cudaEventRecord", self.rt.cudaEventRecord(event, stream))

    def wait(self, stream: int, event: int) -> None:
        self._call("cudaStreamWaitEvent", self.rt.cudaStreamWaitEvent(stream, event, 0))

    def event_sync(self, event: int) -> None:
        self._call("cudaEventSynchronize", self.rt.cudaEventSynchronize(event))

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(self._call("cudaEventElapsedTime", self.rt.cudaEventElapsedTime(start, end)))

    def destroy_event(self, event: int) -> None:
        self._call("cudaEventDestroy", self.rt.cudaEventDestroy(event))


class _Polygraphy:
    """libcudart through polygraphy's loader; pointers are plain ints."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib

    def _check(self, what: str, status: int) -> None:
        if status != 0:
            raise BackendError.build(f"CUDA call {what} failed", got=f"error {status}")

    def _out_ptr(self, what: str, fn: Any, *args: Any) -> int:
        ptr = ctypes.c_void_p()
        self._check(what, fn(ctypes.byref(ptr), *args))
        return int(ptr.value or 0)

    def stream(self) -> int:
        return self._out_ptr("cudaStreamCreate", self.lib.cudaStreamCreate)

    def malloc(self, nbytes: int) -> int:
        return self._out_ptr("cudaMalloc", self.lib.cudaMalloc, ctypes.c_size_t(nbytes))

    def malloc_host(self, nbytes: int) -> int:
        return self._out_ptr("cudaMallocHost", self.lib.cudaMallocHost, ctypes.c_size_t(nbytes))

    def free(self, ptr: int) -> None:
        self._check("cudaFree", self.lib.cudaFree(ctypes.c_void_p(ptr)))

    def free_host(self, ptr: int) -> None:
        self._check("cudaFreeHost", self.lib.cudaFreeHost(ctypes.c_void_p(ptr)))

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check(
            "cudaMemcpyAsync",
            self.lib.cudaMemcpyAsync(
                ctypes.c_void_p(dst),
                ctypes.c_void_p(src),
                ctypes.c_size_t(nbytes),
                kind,
                ctypes.c_void_p(stream),
            ),
        )

    def sync(self, stream: int) -> None:
        self._check("cudaStreamSynchronize", self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)))

    def destroy(self, stream: int) -> None:
        self._check("cudaStreamDestroy", self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)))

    def event(self) -> int:
        return self._out_ptr("cudaEventCreate", self.lib.cudaEventCreate)

    def record(self, event: int, stream: int) -> None:
        self._check(
            "cudaEventRecord", self.lib.cudaEventRecord(ctypes.c_void_p(event), ctypes.c_void_p(stream))
        )

    def wait(self, stream: int, event: int) -> None:
        self._check(
            "cudaStreamWaitEvent",
            self.lib.cudaStreamWaitEvent(ctypes.c_void_p(stream), ctypes.c_void_p(event), ctypes.c_uint(0)),
        )

    def event_sync(self, event: int) -> None:
        self._check("cudaEventSynchronize", self.lib.cudaEventSynchronize(ctypes.c_void_p(event)))

    def elapsed_ms(self, start: int, end: int) -> float:
        ms = ctypes.c_float()
        self._check(
            "cudaEventElapsedTime",
            self.lib.cudaEventElapsedTime(ctypes.byref(ms), ctypes.c_void_p(start), ctypes.c_void_p(end)),
        )
        return float(ms.value)

    def destroy_event(self, event: int) -> None:
        self._check("cudaEventDestroy", self.lib.cudaEventDestroy(ctypes.c_void_p(event)))


def cuda_runtime(purpose: str = "the TensorRT backend", extra: str = "trt") -> _CudaPython | _Polygraphy:
    """cuda-python when installed, else polygraphy's libcudart handle."""
    rt = _cuda_python()
    if rt is not None:
        return _CudaPython(rt)
    try:
        from polygraphy import cuda as pg_cuda

        return _Polygraphy(pg_cuda.wrapper().handle)
    except Exception as exc:
        raise missing_dependency("cuda-python", extra, purpose) from exc


class PinnedBuffer:
    """A page-locked host array plus its device twin, grown on demand, freed on close."""

    def __init__(self, cuda: Any, dtype: np.dtype) -> None:
        self.cuda, self.dtype = cuda, np.dtype(dtype)
        self.capacity = 0
        self.host_ptr = self.device_ptr = 0

    def ensure(self, nbytes: int) -> None:
        if nbytes <= self.capacity:
            return
        self.close()
        self.host_ptr = self.cuda.malloc_host(nbytes)
        self.device_ptr = self.cuda.malloc(nbytes)
        self.capacity = nbytes

    def host_view(self, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = int(np.prod(shape)) * self.dtype.itemsize
        raw = (ctypes.c_byte * nbytes).from_address(self.host_ptr)
        return np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def close(self) -> None:
        if self.capacity:
            self.cuda.free_host(self.host_ptr)
            self.cuda.free(self.device_ptr)
        self.capacity = 0
        self.host_ptr = self.device_ptr = 0
