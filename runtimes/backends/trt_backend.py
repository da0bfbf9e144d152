"""TensorRT engine backend (TensorRT 10+ name-based tensor API), no torch.

Reads ``model.engine.json`` (ModelMeta) beside the engine. Batches go through an OverlappedRunner: pinned
host buffers, uploads on a copy stream, ``execute_async_v3`` and the download on a compute stream, events
instead of stream-wide syncs, so ``submit`` of batch i+1 overlaps the inference of batch i. Buffers grow
to the largest shape seen and are reused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.backends.cuda_mem import PinnedBuffer, cuda_runtime
from dehazekit.runtimes.backends.overlap import OverlappedRunner
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
            raise ModelFileError.build(
                "TensorRT engine has no ModelMeta sidecar",
                got=str(path),
                expected=str(sidecar),
                fix="rebuild with `dehazekit export --trt`",
            )
        super().__init__(ModelMeta.load(sidecar))
        trt = _import_trt()
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFileError.build(
                f"TensorRT could not deserialise {path.name}",
                fix="rebuild the engine with this TensorRT version and GPU",
            )
        self.context = self.engine.create_execution_context()
        self._bind_names()
        self.cuda = cuda_runtime()
        self.runner = OverlappedRunner(self.cuda, self._dtype(self.input_name), self._dtype(self.output_name))

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
            raise ModelFileError.build(
                "engine tensor type not supported", got=dtype.name, expected="FLOAT or HALF"
            )
        return np.dtype(by_name[dtype.name])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.runner.collect(self.runner.submit(batch, self._launch))

    def submit(self, batch: np.ndarray) -> object:
        self.validate(batch)
        return self.runner.submit(batch, self._launch)

    def collect(self, ticket: object) -> np.ndarray:
        return self.runner.collect(ticket)  # type: ignore[arg-type]

    def _launch(self, stream: int, in_ptr: int, shape: tuple[int, ...], out: PinnedBuffer):
        if not self.context.set_input_shape(self.input_name, tuple(shape)):
            low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            raise BackendError.build(
                "input shape outside the engine's optimisation profile",
                got=tuple(shape),
                expected=f"{tuple(low)} .. {tuple(high)}",
                fix="rebuild the engine with a larger profile or use --tile",
            )
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out.ensure(int(np.prod(out_shape)) * out.dtype.itemsize)
        self.context.set_tensor_address(self.input_name, in_ptr)
        self.context.set_tensor_address(self.output_name, out.device_ptr)
        if not self.context.execute_async_v3(stream):
            raise BackendError.build("TensorRT execution failed", got=f"input shape {shape}")
        return out.device_ptr, out_shape, None

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "providers": [f"TensorRT {self._trt.__version__}"],
            "backbone": self.meta.backbone,
            "overlap": "2 streams, 2 staging slots",
        }

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self.runner.close()
        self.context = self.engine = None
