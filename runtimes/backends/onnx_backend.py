"""ONNX Runtime backend: TensorRT, CUDA, then CPU execution providers, whichever are installed."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.backends.cuda_mem import cuda_runtime
from dehazekit.runtimes.backends.overlap import OverlappedRunner
from dehazekit.runtimes.errors import (
    BackendError,
    ConfigError,
    DehazeKitError,
    ModelFileError,
    missing_dependency,
)
from dehazekit.runtimes.meta import META_KEY, ModelMeta

log = logging.getLogger(__name__)

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
DEVICE_PROVIDERS = {
    "auto": PREFERRED,
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "gpu": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def _import_ort():
    from dehazekit.runtimes.backends.ort_install import check_single_ort, installed_ort_distributions

    check_single_ort(installed_ort_distributions())
    try:
        import onnxruntime
    except ImportError as exc:
        raise missing_dependency(
            "onnxruntime", "cpu", "the ONNX backend (or 'dehazekit[gpu]' on NVIDIA)"
        ) from exc
    return onnxruntime


def choose_providers(device: str, providers: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Providers in preference order, restricted to what this onnxruntime build has."""
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError.build(
                "requested ONNX Runtime providers are not available",
                got=missing,
                expected=list(available),
                fix="pip install 'dehazekit[gpu]' for CUDA",
            )
        return list(providers)
    if device not in DEVICE_PROVIDERS:
        raise ConfigError.build("unknown device", got=device, expected=sorted(DEVICE_PROVIDERS))
    chosen = [p for p in DEVICE_PROVIDERS[device] if p in available]
    if device != "auto" and device != "cpu" and chosen[:1] == ["CPUExecutionProvider"]:
        raise BackendError.build(
            f"device '{device}' asked for but this onnxruntime has no GPU provider",
            got=list(available),
            fix="pip install 'dehazekit[gpu]' or use --device cpu",
        )
    return chosen


def read_onnx_meta(path: Path, custom: dict[str, str]) -> ModelMeta:
    """ModelMeta from metadata_props, else from a ``<model>.json`` sidecar; never guessed."""
    if META_KEY in custom:
        return ModelMeta.from_json(custom[META_KEY])
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return ModelMeta.load(sidecar)
    raise ModelFileError.build(
        f"{path.name} carries no dehazekit ModelMeta",
        got=sorted(custom),
        expected=f"metadata_props key '{META_KEY}' or a {sidecar.name} sidecar",
        fix="export with `dehazekit export` (or write a ModelMeta JSON beside the file)",
    )


class OnnxBackend(BaseBackend):
    """onnxruntime.InferenceSession behind the Backend protocol."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        io_binding: bool | None = None,
    ) -> None:
        ort = _import_ort()
        path = Path(path)
        if not path.is_file():
            raise ModelFileError.build("ONNX model not found", got=str(path))
        chosen = choose_providers(device, providers, ort.get_available_providers())
        self.cuda_io = _CudaIO.open(chosen, io_binding)
        if self.cuda_io is not None:
            chosen = self.cuda_io.with_stream(chosen)
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures reach the user as one BackendError line, not ORT's log
        threads = threads or int(os.environ.get("DEHAZEKIT_ORT_THREADS", "0"))
        if threads:
            options.intra_op_num_threads = threads
        self.threads = threads or None  # None: onnxruntime's default (one per physical core)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelFileError.build(
                f"cannot load {path.name} as an ONNX model",
                got=str(exc).splitlines()[0],
                fix="pass a model exported by `dehazekit export`",
            ) from exc
        super().__init__(read_onnx_meta(path, self.session.get_modelmeta().custom_metadata_map))
        self._check_io()
        if self.cuda_io is not None:
            self.cuda_io.start(self.session, self.input_name, self.output_name, self.input_dtype, ort)

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelFileError.build("ONNX model must have exactly one input", got=[i.name for i in inputs])
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        shape = inputs[0].shape
        channel = shape[3] if self.meta.layout == "NHWC" else shape[1]
        if isinstance(channel, int):
            self.channels = channel

    def submit(self, batch: np.ndarray) -> object:
        if self.cuda_io is None:
            return super().submit(batch)
        self.validate(batch)
        return self.cuda_io.runner.submit(batch, self.cuda_io.launch)

    def collect(self, ticket: object) -> np.ndarray:
        if self.cuda_io is None:
            return super().collect(ticket)
        return self.cuda_io.runner.collect(ticket)  # type: ignore[arg-type]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self.cuda_io is not None:
            return self.cuda_io.runner.collect(self.cuda_io.runner.submit(batch, self.cuda_io.launch))
        feed = {self.input_name: batch.astype(self.input_dtype, copy=False), **self.extra_feeds()}
        try:
            out = self.session.run([self.output_name], feed)[0]
        except Exception as exc:
            raise BackendError.build(
                "ONNX Runtime inference failed",
                got=str(exc).splitlines()[0],
                expected=f"input {self.input_name} of shape {batch.shape}",
            ) from exc
        return out.astype(np.float32, copy=False)

    def extra_feeds(self) -> dict[str, np.ndarray]:
        """Inputs fed beside the image on every run (an adapter bank's overridable weights); none here."""
        return {}

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {
            "backend": self.name,
            "providers": self.providers,
            "backbone": self.meta.backbone,
            "threads": self.threads or "onnxruntime default",
        }
        if self.cuda_io is not None:
            info["overlap"] = "CUDA I/O binding, 2 streams, 2 staging slots"
        return info

    def close(self) -> None:
        if self.cuda_io is not None:
            self.cuda_io.close()
        super().close()
        self.session = None  # frees the arena now, not at interpreter exit


class _CudaIO:
    """ONNX Runtime's CUDA provider fed through I/O binding on dehazekit's own compute stream.

    Inputs are uploaded by the OverlappedRunner (pinned host buffer -> device, copy stream) and bound by
    device pointer; the provider runs on our compute stream (``user_compute_stream``) and the run does not
    synchronise the provider (``disable_synchronize_execution_providers``), so the download and the event
    that ``collect`` waits on are queued behind the kernels instead of blocking the host.
    """

    def __init__(self, cuda: object, stream: int) -> None:
        self.cuda, self.stream = cuda, stream
        self.runner: OverlappedRunner | None = None

    @classmethod
    def open(cls, providers: Sequence[str], wanted: bool | None) -> _CudaIO | None:
        if wanted is False or "CUDAExecutionProvider" not in providers:
            return None
        try:
            cuda = cuda_runtime("I/O binding on the CUDA provider", "gpu")
        except DehazeKitError as exc:
            if wanted:
                raise
            log.info("CUDA I/O binding off (%s); plain session.run", exc)
            return None
        return cls(cuda, cuda.stream())

    def with_stream(self, providers: Sequence[str]) -> list[object]:
        options = {"user_compute_stream": str(self.stream), "do_copy_in_default_stream": "0"}
        return [(p, options) if p == "CUDAExecutionProvider" else p for p in providers]

    def start(
        self, session: object, input_name: str, output_name: str, input_dtype: np.dtype, ort: object
    ) -> None:
        self.session, self.input_name, self.output_name = session, input_name, output_name
        self.input_dtype = np.dtype(input_dtype)
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        out_type = session.get_outputs()[0].type
        out_dtype = np.float16 if "float16" in out_type else np.float32
        self.runner = OverlappedRunner(
            self.cuda, self.input_dtype, np.dtype(out_dtype), compute_stream=self.stream
        )

    def launch(self, stream: int, in_ptr: int, shape: tuple[int, ...], out: object):
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", 0, self.input_dtype, list(shape), in_ptr)
        binding.bind_output(self.output_name, "cuda", 0)  # ORT allocates; the OrtValue is kept alive below
        try:
            self.session.run_with_iobinding(binding, self.run_options)
        except Exception as exc:
            raise BackendError.build(
                "ONNX Runtime CUDA inference failed",
                got=str(exc).splitlines()[0],
                expected=f"input {self.input_name} of shape {shape}",
            ) from exc
        value = binding.get_outputs()[0]
        return value.data_ptr(), tuple(value.shape()), (binding, value)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()  # destroys the copy stream; the compute stream is ours to destroy below
        self.cuda.destroy(self.stream)
