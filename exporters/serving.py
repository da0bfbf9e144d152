"""Serving configs for the engines that serve many streams: a Triton model repository and a DeepStream
nvinfer config, both built from an exported ONNX model (and its TensorRT engine where one was built).

    write_triton_repo("model.onnx", "triton_repo/", engine="model.engine")
    write_deepstream("model.onnx", "deepstream/")

Input/output names, element types and dynamic axes are read from the ONNX graph itself, the padding
contract from its ModelMeta, so a config can never disagree with the model it serves. Every file is
written atomically. Neither Triton nor DeepStream runs here: the tests parse what is written (Triton's
own model-config protobuf; DeepStream's key-file format) and check it against the model.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from dehazekit.runtimes.errors import ConfigError, DehazeKitError, ExportError, ModelFileError
from dehazekit.runtimes.io_utils import atomic_path, atomic_write_text
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)

TRITON_MAX_BATCH = 8
TRITON_QUEUE_DELAY_US = 2000  # 2 ms: at 30 fps per camera this gathers frames of several cameras per call
DEEPSTREAM_CONFIG = "config_infer_dehaze.txt"
_TRITON_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input/output: name, Triton type, dims without the batch axis (-1 = dynamic)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    dynamic_batch: bool


def _tensor(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in _TRITON_TYPES:
        raise ExportError.build(
            f"ONNX tensor {value.name} has an unsupported element type",
            got=onnx.TensorProto.DataType.Name(tensor.elem_type),
            expected="FLOAT or FLOAT16",
        )
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    if len(dims) != 4:
        raise ExportError.build(f"ONNX tensor {value.name} is not (B, C, H, W)", got=dims)
    return TensorSpec(value.name, _TRITON_TYPES[tensor.elem_type], tuple(dims[1:]), dims[0] == -1)


def onnx_io(onnx_path: Path) -> tuple[TensorSpec, TensorSpec, ModelMeta]:
    """(input, output, ModelMeta) of an exported model, read without loading its weights."""
    from dehazekit.exporters.onnx_export import read_meta

    if not Path(onnx_path).is_file():
        raise ModelFileError.build(
            "ONNX model not found", got=str(onnx_path), fix="run `dehazekit export` first"
        )
    proto = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ExportError.build(
            "a dehazing model has one input and one output",
            got=f"{len(inputs)} inputs, {len(proto.graph.output)} outputs",
        )
    return _tensor(inputs[0]), _tensor(proto.graph.output[0]), read_meta(proto)


# --- Triton ---------------------------------------------------------------------------------------
def triton_config(
    name: str,
    platform: str,
    source: TensorSpec,
    target: TensorSpec,
    meta: ModelMeta,
    *,
    max_batch_size: int,
    instances: int,
    kind: str,
    tensorrt_accelerator: bool = False,
) -> str:
    """config.pbtxt text (protobuf text format of inference.ModelConfig)."""
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch_size}",
        _io_block("input", source),
        _io_block("output", target),
    ]
    if max_batch_size > 1:
        preferred = sorted({b for b in (max_batch_size // 2, max_batch_size) if b > 1})
        lines.append(
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
            f"  max_queue_delay_microseconds: {TRITON_QUEUE_DELAY_US}\n}}"
        )
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    if tensorrt_accelerator:  # ONNX Runtime's TensorRT execution provider inside Triton
        precision = "FP16" if meta.precision == "fp16" else "FP32"
        lines.append(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n"
            '      { name: "tensorrt"\n'
            f'        parameters {{ key: "precision_mode" value: "{precision}" }} }}\n'
            "    ]\n  }\n}"
        )
    # clients need the padding contract: H and W must be multiples of pad_multiple
    lines.append(
        'parameters: {\n  key: "dehazekit_meta"\n'
        f"  value: {{ string_value: {json.dumps(meta.to_json())} }}\n}}"
    )
    return "\n".join(lines) + "\n"


def _io_block(kind: str, spec: TensorSpec) -> str:
    dims = ", ".join(map(str, spec.dims))
    return (
        f'{kind} [\n  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n'
        f"    dims: [ {dims} ]\n  }}\n]"
    )


def write_triton_repo(
    onnx_path: str | Path,
    repo: str | Path,
    *,
    name: str = "dehazekit",
    engine: str | Path | None = None,
    max_batch_size: int = TRITON_MAX_BATCH,
    instances: int = 1,
    kind: str = "KIND_GPU",
    tensorrt_accelerator: bool = True,
) -> list[Path]:
    """A Triton model repository: ``<repo>/<name>/{config.pbtxt, 1/model.onnx}`` (onnxruntime backend),
    plus ``<repo>/<name>_trt/{config.pbtxt, 1/model.plan}`` when ``engine`` is given. Returns the configs."""
    if max_batch_size < 0 or instances < 1 or kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise ConfigError.build(
            "invalid Triton settings",
            got=(max_batch_size, instances, kind),
            expected="max_batch_size >= 0, instances >= 1, kind KIND_GPU/KIND_CPU/KIND_AUTO",
        )
    source, target, meta = onnx_io(Path(onnx_path))
    batch = max_batch_size if source.dynamic_batch else 0  # a fixed batch axis cannot be batched by Triton
    repo = Path(repo)
    text = triton_config(
        name,
        "onnxruntime_onnx",
        source,
        target,
        meta,
        max_batch_size=batch,
        instances=instances,
        kind=kind,
        tensorrt_accelerator=tensorrt_accelerator and kind != "KIND_CPU",
    )
    written = [_model_dir(repo / name, Path(onnx_path), "model.onnx", text)]
    if engine is not None:
        plan_batch = min(batch, _engine_max_batch(Path(engine)))
        plan_text = triton_config(
            f"{name}_trt",
            "tensorrt_plan",
            source,
            target,
            meta,
            max_batch_size=plan_batch,
            instances=instances,
            kind="KIND_GPU",
        )
        written.append(_model_dir(repo / f"{name}_trt", Path(engine), "model.plan", plan_text))
    log.info("Triton model repository in %s: %s", repo, ", ".join(p.parent.name for p in written))
    return written


def _model_dir(folder: Path, model: Path, filename: str, config: str) -> Path:
    if not model.is_file():
        raise ModelFileError.build("model file not found", got=str(model))
    with atomic_path(folder / "1" / filename) as tmp:
        shutil.copyfile(model, tmp)
    return atomic_write_text(folder / "config.pbtxt", config)


def _engine_max_batch(engine: Path) -> int:
    """The engine profile's largest batch (from the ``.engine.json`` sidecar); 1 when unknown."""
    from dehazekit.exporters.tensorrt_build import sidecar_path

    side = sidecar_path(engine)
    try:
        return int(ModelMeta.load(side).extra["tensorrt"]["max_shape"][0])
    except (OSError, KeyError, IndexError, TypeError, ValueError, DehazeKitError):
        # no sidecar: the engine may have been built elsewhere; batch 1 is always valid
        log.warning("no readable %s: the TensorRT model is served with max_batch_size 1", side.name)
        return 1


def parse_size(text: str) -> tuple[int, int]:
    """Parse HEIGHTxWIDTH: "720x1280" -> (720, 1280)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise ConfigError.build("bad size", got=text, expected="HEIGHTxWIDTH, e.g. 720x1280")
    return height, width


# --- DeepStream -----------------------------------------------------------------------------------
def deepstream_config(
    onnx_name: str,
    engine_name: str,
    source: TensorSpec,
    target: TensorSpec,
    meta: ModelMeta,
    *,
    height: int,
    width: int,
    batch: int,
    fp16: bool,
) -> str:
    """nvinfer [property] group: raw output tensors attached as metadata (network-type=100), input scaled
    from 0..255 to [0, 1], RGB planes, NCHW."""
    if meta.mean is not None or meta.std is not None or tuple(meta.value_range) != (0.0, 1.0):
        raise ExportError.build(
            "nvinfer's net-scale-factor can only express a [0, 1] input here",
            got=f"range {meta.value_range}, mean {meta.mean}, std {meta.std}",
            expected="a model taking [0, 1] RGB without mean/std",
        )
    pad = meta.pad_multiple
    if height % pad or width % pad:
        raise ConfigError.build(
            f"DeepStream input size must be a multiple of {pad}",
            got=f"{height}x{width}",
            fix=f"e.g. --deepstream-size {height + (-height) % pad}x{width + (-width) % pad}",
        )
    entries = [
        ("gpu-id", 0),
        ("net-scale-factor", repr(1.0 / 255.0)),
        ("offsets", "0;0;0"),
        ("model-color-format", 0),
        ("onnx-file", onnx_name),
        ("model-engine-file", engine_name),
        ("infer-dims", f"3;{height};{width}"),
        ("batch-size", batch),
        ("network-mode", 2 if fp16 else 0),
        ("network-type", 100),
        ("output-tensor-meta", 1),
        ("network-input-order", 0),
        ("output-blob-names", target.name),
        ("process-mode", 1),
        ("gie-unique-id", 1),
        ("maintain-aspect-ratio", 0),
    ]
    head = [
        f"# DeepStream nvinfer config for {meta.backbone} (written by dehazekit {meta.dehazekit_version})",
        f"# input {source.name} (B, 3, H, W) RGB in [0, 1]; output {target.name} (B, 3, H, W) RGB in [0, 1]",
        "# model-color-format 0 = RGB; network-input-order 0 = NCHW; process-mode 1 = full frames;",
        "# network-type 100 = no parser: the output tensor arrives as NvDsInferTensorMeta",
        "# (output-tensor-meta=1); samples/deepstream/ shows how to draw it into the frame",
    ]
    body = [f"{key}={value}" for key, value in entries]
    return "\n".join([*head, "[property]", *body]) + "\n"


def write_deepstream(
    onnx_path: str | Path,
    folder: str | Path,
    *,
    engine: str | Path | None = None,
    size: tuple[int, int] = (720, 1280),
    batch: int = 1,
) -> Path:
    """``<folder>/config_infer_dehaze.txt`` + the ONNX (and engine) beside it, referenced by relative path.

    Without ``engine`` nvinfer builds one on first start and caches it under the name written here.
    """
    source, target, meta = onnx_io(Path(onnx_path))
    folder = Path(folder)
    onnx_name = "model.onnx"
    with atomic_path(folder / onnx_name) as tmp:
        shutil.copyfile(onnx_path, tmp)
    fp16 = meta.precision == "fp16"
    if engine is not None:
        engine_name = "model.engine"
        with atomic_path(folder / engine_name) as tmp:
            shutil.copyfile(engine, tmp)
    else:  # the name nvinfer gives the engine it builds and serialises beside the ONNX
        engine_name = f"{onnx_name}_b{batch}_gpu0_{'fp16' if fp16 else 'fp32'}.engine"
    text = deepstream_config(
        onnx_name, engine_name, source, target, meta, height=size[0], width=size[1], batch=batch, fp16=fp16
    )
    path = atomic_write_text(folder / DEEPSTREAM_CONFIG, text)
    log.info("DeepStream nvinfer config: %s", path)
    return path
