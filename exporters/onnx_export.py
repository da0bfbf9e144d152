"""ONNX export: deploy form -> model.onnx with dynamic batch/H/W and its ModelMeta in metadata_props.

Uses the TorchScript exporter (``dynamo=False``): the dynamo exporter cannot prove the pad-multiple
divisibility of free H/W dims for several backbones (see ../shared/compat/EXPORT.md), while tracing
at a valid size and checking the graph at other sizes afterwards (dehazekit.exporters.verify) works for all.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from dehazekit.exporters.formats import OPSET_RANGE
from dehazekit.runtimes.errors import ExportError, ModelFileError
from dehazekit.runtimes.io_utils import atomic_path
from dehazekit.runtimes.meta import META_KEY, ModelMeta

log = logging.getLogger(__name__)

INPUT_NAME = "hazy"
OUTPUT_NAME = "clear"
DYNAMIC_AXES = {"batch": 0, "height": 2, "width": 3}
MAX_PROTO_BYTES = 2_000_000_000  # protobuf limit; larger models would need external data


# --- model and meta resolution ---------------------------------------------------------------
def load_for_export(
    model_or_path: nn.Module | str | Path, backbone: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Return (model, meta fields read beside the file) for a module, a model folder or a weights file."""
    if isinstance(model_or_path, nn.Module):
        return model_or_path, {}
    path = Path(model_or_path)
    if not path.exists():
        raise ModelFileError.build(
            "model to export not found",
            got=str(path),
            fix="pass an adapt output folder, a model.safetensors or a checkpoint",
        )
    from dehazekit.models import load_model

    model = load_model(path, backbone=backbone)
    sidecar = (path if path.is_dir() else path.parent) / "model.json"
    fields: dict[str, Any] = {}
    if sidecar.is_file():
        saved = ModelMeta.load(sidecar)
        fields = {
            "adapter_digest": saved.adapter_digest,
            "selected_blocks": list(saved.selected_blocks),
            "extra": dict(saved.extra),
        }
    return model, fields


def meta_for_export(
    model: nn.Module, *, precision: str = "fp32", source: nn.Module | None = None, **fields: Any
) -> ModelMeta:
    """ModelMeta describing ``model`` (the deploy form, built by create_backbone) as an artifact.

    Adapter facts (digest, selected blocks) come from ``source`` (the model as given: its
    ``dehazekit_meta`` from load_model, or attributes set by the adaptation), then from ``fields``.
    """
    from dehazekit.models import meta_for

    origin = source if source is not None else model
    saved = getattr(origin, "dehazekit_meta", None)
    adapter: dict[str, Any] = {}
    for key in ("adapter_digest", "selected_blocks"):
        value = getattr(origin, key, None)
        if value is None and saved is not None:
            value = getattr(saved, key, None)
        if value:
            adapter[key] = value
    adapter.update({k: v for k, v in fields.items() if v is not None})
    return meta_for(model, precision=precision, **adapter)


def check_exportable(model: nn.Module) -> None:
    """Refuse, before any work, a backbone whose spec says it has no ONNX form (with the reason)."""
    from dehazekit.backbones import spec_of

    spec = spec_of(model)
    if not spec.exportable:
        raise ExportError.build(
            f"backbone {spec.name} is not exportable",
            got=spec.export_note or "no note",
            fix="choose an exportable backbone (`dehazekit backbones`)",
        )


def default_trace_size(pad_multiple: int, min_size: int) -> tuple[int, int]:
    """Smallest valid non-square size >= 64 px: non-square so an H/W mix-up cannot hide in the trace."""
    from dehazekit.backbones import padded_size

    h = padded_size(64, pad_multiple, min_size)
    return h, padded_size(h + 1, pad_multiple, min_size)


def _check_args(opset: int, dynamic: Sequence[str], trace_size: tuple[int, int], meta: ModelMeta) -> None:
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise ExportError.build(
            "unsupported ONNX opset",
            got=opset,
            expected=f"{OPSET_RANGE[0]}..{OPSET_RANGE[1]}",
            fix="use the default opset 17",
        )
    unknown = sorted(set(dynamic) - set(DYNAMIC_AXES))
    if unknown:
        raise ExportError.build("unknown dynamic axis", got=unknown, expected=sorted(DYNAMIC_AXES))
    for side in trace_size:
        if side % meta.pad_multiple or side < meta.min_size:
            raise ExportError.build(
                f"trace size invalid for {meta.backbone}",
                got=trace_size,
                expected=f"multiples of {meta.pad_multiple}, >= {meta.min_size}",
            )


# --- export ----------------------------------------------------------------------------------
def _trace_to_onnx(model: nn.Module, x: torch.Tensor, opset: int, dynamic: Sequence[str], tmp: Path) -> None:
    axes = {DYNAMIC_AXES[name]: name for name in dynamic}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                model,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: dict(axes)} if axes else None,
                do_constant_folding=True,
            )
        except Exception as exc:  # the exporter raises many unrelated types; keep the message
            # keep the first lines: the exporter appends the whole TorchScript graph to its message
            brief = "\n".join(str(exc).strip().splitlines()[:3])[:600]
            raise ExportError.build(
                "torch.onnx.export failed",
                got=f"{type(exc).__name__}: {brief}",
                fix="see the backbone's export_note; report the error",
            ) from exc
    tracer = sorted({str(w.message).split(".")[0] for w in caught if "Tracer" in type(w.message).__name__})
    for message in tracer:  # graph checks at other sizes (verify) decide whether they matter
        log.debug("tracer warning during export: %s", message)


def _optimize(proto: onnx.ModelProto, workdir: Path) -> onnx.ModelProto:
    """Constant folding, redundant-node and common-subexpression elimination.

    Uses onnxruntime's *basic* (hardware-independent, standard-ops-only) graph optimisations written
    back to ONNX: seconds where the onnxscript optimizer took minutes on ConvIR's 7k-node graph.
    The graph is kept unchanged if the result would need anything beyond the default ONNX domain.
    """
    import onnxruntime as ort

    src, dst = workdir / "folding_in.onnx", workdir / "folding_out.onnx"
    onnx.save(proto, str(src))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(str(dst))
    except Exception as exc:  # folding is an optimisation, never a reason to lose the export
        log.warning("ONNX constant folding skipped: %s", exc)
        return proto
    if any(node.domain not in ("", "ai.onnx") for node in folded.graph.node):
        log.warning("ONNX constant folding skipped: the folded graph uses non-standard operators")
        return proto
    used = {opset.domain: opset for opset in folded.opset_import if opset.domain in ("", "ai.onnx")}
    del folded.opset_import[:]
    folded.opset_import.extend(used.values())  # onnxruntime lists every domain it knows
    del folded.graph.value_info[:]
    return folded


def _finalise(proto: onnx.ModelProto, meta: ModelMeta) -> onnx.ModelProto:
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.to_json()
    proto.producer_name, proto.producer_version = "dehazekit", meta.dehazekit_version
    proto.graph.name = meta.backbone
    proto.doc_string = (
        f"{meta.backbone} dehazing network: {INPUT_NAME} (B,3,H,W) float32 [0,1] -> {OUTPUT_NAME}"
    )
    return proto


def build_onnx(
    model_or_path: nn.Module | str | Path,
    *,
    opset: int = 17,
    dynamic: Sequence[str] = ("batch", "height", "width"),
    fp16: bool = False,
    trace_size: tuple[int, int] | None = None,
    backbone: str | None = None,
    meta_fields: dict[str, Any] | None = None,
) -> tuple[onnx.ModelProto, ModelMeta]:
    """The ONNX model (in memory) and its ModelMeta; see ``export_onnx`` for the contract."""
    from dehazekit.exporters.deploy import to_deploy

    model, saved_fields = load_for_export(model_or_path, backbone)
    check_exportable(model)
    deploy = to_deploy(model)
    meta = meta_for_export(
        deploy, precision="fp16" if fp16 else "fp32", source=model, **{**saved_fields, **(meta_fields or {})}
    )
    size = tuple(trace_size) if trace_size else default_trace_size(meta.pad_multiple, meta.min_size)
    _check_args(opset, dynamic, size, meta)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="dehazekit-export-") as tmpdir:
        raw = Path(tmpdir) / "traced.onnx"
        with torch.no_grad():
            _trace_to_onnx(deploy, x, opset, dynamic, raw)
        proto = _finalise(_optimize(onnx.load(str(raw)), Path(tmpdir)), meta)
    if fp16:
        from dehazekit.exporters.fp16 import convert_fp16

        proto = convert_fp16(proto)
        meta = meta.replace(precision="fp16")
    if proto.ByteSize() > MAX_PROTO_BYTES:
        raise ExportError.build("ONNX model larger than 2 GB", got=proto.ByteSize(), fix="export with fp16")
    return proto, meta


def write_onnx(proto: onnx.ModelProto, out: str | Path) -> Path:
    """Write ``proto`` atomically (a reader never sees a partial file)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return out


def export_onnx(
    model_or_path: nn.Module | str | Path,
    out: str | Path,
    *,
    opset: int = 17,
    dynamic: Sequence[str] = ("batch", "height", "width"),
    fp16: bool = False,
    trace_size: tuple[int, int] | None = None,
    backbone: str | None = None,
    meta_fields: dict[str, Any] | None = None,
) -> Path:
    """Export to ONNX: input ``hazy`` (B,3,H,W) float32 in [0,1], output ``clear`` (B,3,H,W) float32.

    The model goes through ``to_deploy`` first. H and W must be multiples of the backbone's pad
    multiple at run time (runtimes pads other sizes). ``fp16`` stores fp16 weights/compute with fp32
    I/O (dehazekit.exporters.fp16). Same inputs and ``meta_fields={'created_at': ...}`` give the same bytes.
    No parity check: ``dehazekit.exporters.export`` is the checked pipeline (refuses a failing artifact).
    """
    proto, meta = build_onnx(
        model_or_path,
        opset=opset,
        dynamic=dynamic,
        fp16=fp16,
        trace_size=trace_size,
        backbone=backbone,
        meta_fields=meta_fields,
    )
    out = write_onnx(proto, out)
    log.info("exported %s -> %s (%.1f MB, %s)", meta.backbone, out, out.stat().st_size / 1e6, meta.precision)
    return out


def read_meta(onnx_path: str | Path | onnx.ModelProto) -> ModelMeta:
    """The ModelMeta stored in an exported ONNX file."""
    proto = (
        onnx_path
        if isinstance(onnx_path, onnx.ModelProto)
        else onnx.load(str(onnx_path), load_external_data=False)
    )
    for entry in proto.metadata_props:
        if entry.key == META_KEY:
            return ModelMeta.from_json(entry.value)
    raise ModelFileError.build(
        "ONNX file carries no dehazekit metadata",
        got=str(onnx_path)[:200],
        expected=f"metadata_props key {META_KEY!r}",
        fix="re-export with dehazekit export",
    )
