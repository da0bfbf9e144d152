"""TensorRT engine backend (TensorRT 10+ name-based tensor API), no torch.

Reads ``model.engine.json`` (ModelMeta) beside the engine. Inputs are copied into pinned host buffers
and run on one explicit CUDA stream; buffers grow to the largest shape seen and are reused.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.backends.cuda_mem import D2H, H2D, PinnedBuffer, cuda_runtime
from dehazekit.runtimes.errors import BackendError, ModelFileError, missing_dependency
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)


def engine_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise missing_dependency("tensorrt", "trt", "the TensorRT backend (.engine files)") from exc
    return trt


class TensorRTBackend(BaseBackend):
    """A deserialised engine with one execution context and one stream."""

    name = "tensorrt"

    def __init__(self, path: str | Path, device: str = "auto", providers: object = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError.build("TensorRT engine not found", got=str(path))
        sidecar = engine_sidecar(path)
        if not sidecar.is_file():
            raise ModelFileError.build("TensorRT engine has no ModelMeta sidecar", got=str(path),
                                       expected=str(sidecar), fix="rebuild with `dehazekit export --trt`")
        super().__init__(ModelMeta.load(sidecar))
        trt = _import_trt()
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFileError.build(f"TensorRT could not deserialise {path.name}",
                                       fix="rebuild the engine with this TensorRT version and GPU")
        self.context = self.engine.create_execution_context()
        self._bind_names()
        self.cuda = cuda_runtime()
        self.stream = self.cuda.stream()
        self._in = PinnedBuffer(self.cuda, self._dtype(self.input_name))
        self._out = PinnedBuffer(self.cuda, self._dtype(self.output_name))

    def _bind_names(self) -> None:
        trt = self._trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise ModelFileError.build("engine must have one input and one output", got=names)
        self.input_name, self.output_name = inputs[0], outputs[0]

    def _dtype(self, name: str) -> np.dtype:
        dtype = self.engine.get_tensor_dtype(name)
        if hasattr(self._trt, "nptype"):
            return np.dtype(self._trt.nptype(dtype))
        # releases without nptype: the two I/O types dehazekit engines use
        by_name = {"FLOAT": np.float32, "HALF": np.float16}
        if dtype.name not in by_name:
            raise ModelFileError.build("engine tensor type not supported", got=dtype.name, expected="FLOAT or HALF")
        return np.dtype(by_name[dtype.name])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if not self.context.set_input_shape(self.input_name, tuple(batch.shape)):
            low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            raise BackendError.build("input shape outside the engine's optimisation profile",
                                     got=tuple(batch.shape), expected=f"{tuple(low)} .. {tuple(high)}",
                                     fix="rebuild the engine with a larger profile or use --tile")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        feed = np.ascontiguousarray(batch, dtype=self._in.dtype)
        self._in.ensure(feed.nbytes)
        self._out.ensure(int(np.prod(out_shape)) * self._out.dtype.itemsize)
        self._in.host_view(feed.shape)[...] = feed
        self.cuda.copy(self._in.device_ptr, self._in.host_ptr, feed.nbytes, H2D, self.stream)
        self.context.set_tensor_address(self.input_name, self._in.device_ptr)
        self.context.set_tensor_address(self.output_name, self._out.device_ptr)
        if not self.context.execute_async_v3(self.stream):
            raise BackendError.build("TensorRT execution failed", got=f"input shape {feed.shape}")
        host_out = self._out.host_view(out_shape)
        self.cuda.copy(self._out.host_ptr, self._out.device_ptr, host_out.nbytes, D2H, self.stream)
        self.cuda.sync(self.stream)
        # copy out of the pinned buffer: the next call overwrites it
        return host_out.astype(np.float32, copy=True)

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "providers": [f"TensorRT {self._trt.__version__}"],
                "backbone": self.meta.backbone}

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._in.close()
        self._out.close()
        self.cuda.destroy(self.stream)
        self.context = self.engine = None
