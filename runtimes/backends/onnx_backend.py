"""ONNX Runtime backend: TensorRT, CUDA, then CPU execution providers, whichever are installed."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.errors import BackendError, ConfigError, ModelFileError, missing_dependency
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
        raise missing_dependency("onnxruntime", "cpu", "the ONNX backend (or 'dehazekit[gpu]' on NVIDIA)") from exc
    return onnxruntime


def choose_providers(device: str, providers: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Providers in preference order, restricted to what this onnxruntime build has."""
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError.build("requested ONNX Runtime providers are not available", got=missing,
                                     expected=list(available), fix="pip install 'dehazekit[gpu]' for CUDA")
        return list(providers)
    if device not in DEVICE_PROVIDERS:
        raise ConfigError.build("unknown device", got=device, expected=sorted(DEVICE_PROVIDERS))
    chosen = [p for p in DEVICE_PROVIDERS[device] if p in available]
    if device != "auto" and device != "cpu" and chosen[:1] == ["CPUExecutionProvider"]:
        raise BackendError.build(f"device '{device}' asked for but this onnxruntime has no GPU provider",
                                 got=list(available), fix="pip install 'dehazekit[gpu]' or use --device cpu")
    return chosen


def read_onnx_meta(path: Path, custom: dict[str, str]) -> ModelMeta:
    """ModelMeta from metadata_props, else from a ``<model>.json`` sidecar; never guessed."""
    if META_KEY in custom:
        return ModelMeta.from_json(custom[META_KEY])
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return ModelMeta.load(sidecar)
    raise ModelFileError.build(f"{path.name} carries no dehazekit ModelMeta", got=sorted(custom),
                               expected=f"metadata_props key '{META_KEY}' or a {sidecar.name} sidecar",
                               fix="export with `dehazekit export` (or write a ModelMeta JSON beside the file)")


class OnnxBackend(BaseBackend):
    """onnxruntime.InferenceSession behind the Backend protocol."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        ort = _import_ort()
        path = Path(path)
        if not path.is_file():
            raise ModelFileError.build("ONNX model not found", got=str(path))
        chosen = choose_providers(device, providers, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures reach the user as one BackendError line, not ORT's log
        threads = threads or int(os.environ.get("DEHAZEKIT_ORT_THREADS", "0"))
        if threads:
            options.intra_op_num_threads = threads
        self.threads = threads or None  # None: onnxruntime's default (one per physical core)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelFileError.build(f"cannot load {path.name} as an ONNX model", got=str(exc).splitlines()[0],
                                       fix="pass a model exported by `dehazekit export`") from exc
        super().__init__(read_onnx_meta(path, self.session.get_modelmeta().custom_metadata_map))
        self._check_io()

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

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        feed = batch.astype(self.input_dtype, copy=False)
        try:
            out = self.session.run([self.output_name], {self.input_name: feed})[0]
        except Exception as exc:
            raise BackendError.build("ONNX Runtime inference failed", got=str(exc).splitlines()[0],
                                     expected=f"input {self.input_name} of shape {batch.shape}") from exc
        return out.astype(np.float32, copy=False)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "providers": self.providers, "backbone": self.meta.backbone,
                "threads": self.threads or "onnxruntime default"}

    def close(self) -> None:
        super().close()
        self.session = None  # frees the arena now, not at interpreter exit
