"""One export pipeline for the CLI and the Python API: ``export(model, formats, ...) -> ExportResult``.

model -> deploy form -> ONNX (in memory) -> parity vs PyTorch (Polygraphy Comparator, CPU) -> written
only if it passes (or ``force``) -> [TensorRT lint -> engine through Polygraphy's loaders -> engine parity].
The ONNX proto and its ModelMeta stay in memory from trace to engine; nothing is re-read from disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dehazekit.exporters.formats import resolve_args, resolve_formats
from dehazekit.exporters.outputs import check_writable, plan_outputs, refuse_inputs, source_files
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportProgress:
    """One stage starting: ``index`` of ``total`` (1-based), with the seconds since the export began."""

    stage: str
    index: int
    total: int
    detail: str
    elapsed_s: float

    def line(self) -> str:
        return f"export [{self.index}/{self.total}] {self.stage}: {self.detail} ({self.elapsed_s:.1f} s)"


@dataclass
class ExportResult:
    """What an export produced. ``skipped`` maps a format to why it was not built (e.g. no TensorRT)."""

    meta: ModelMeta
    onnx: Path
    parity: Any  # ParityReport
    parity_path: Path
    engine: Path | None = None
    engine_parity: Any = None
    engine_parity_path: Path | None = None
    lint: Any = None  # LintReport (engine exports)
    skipped: dict[str, str] = field(default_factory=dict)
    trtexec: str | None = None  # the equivalent command when the engine was skipped
    proto: Any = field(default=None, repr=False)  # the exported onnx.ModelProto

    @property
    def files(self) -> list[Path]:
        paths = [self.onnx, self.parity_path]
        if self.engine is not None:
            paths += [self.engine, self.engine.with_name(self.engine.name + ".json")]
        if self.engine_parity_path is not None:
            paths.append(self.engine_parity_path)
        return paths


class _Stages:
    def __init__(self, names: list[str], progress: Callable[[ExportProgress], None] | None) -> None:
        self.names, self.progress, self.start = names, progress, time.perf_counter()

    def __call__(self, stage: str, detail: str) -> None:
        event = ExportProgress(
            stage, self.names.index(stage) + 1, len(self.names), detail, time.perf_counter() - self.start
        )
        if self.progress is not None:
            self.progress(event)
        else:
            log.info("%s", event.line())


def _load(model: nn.Module | str | Path | None, backbone: str | None) -> tuple[nn.Module, dict[str, Any]]:
    from dehazekit.backbones import create_backbone, get_spec
    from dehazekit.exporters.onnx_export import load_for_export

    if backbone is not None:
        get_spec(backbone)  # unknown names fail here with suggestions
    if model is None and backbone is not None:
        log.warning("no model given: exporting %s with random initial weights", backbone)
        return create_backbone(backbone).eval(), {}
    if model is None:
        from dehazekit.models import load_model

        return load_model(None), {}
    return load_for_export(model, backbone)


def _plan(model: Any, backbone: str | None, out: Any, opts: dict[str, Any]) -> Any:
    """Output plan; refused before any work if an output would land on an input."""
    from dehazekit.models import default_model_path

    base: Path | None = None
    stem, inputs = "model", []
    if model is None and backbone is None:
        base, inputs = default_model_path(), source_files(None, default_model_path())
    elif isinstance(model, (str, Path)):
        path = Path(model)
        inputs = source_files(path, default_model_path())
        base, stem = (path, "model") if path.is_dir() else (path.parent, path.stem)
    if opts["verify_images"] is not None:
        inputs += [p for p in Path(opts["verify_images"]).iterdir() if p.is_file()]
    if out is not None:
        refuse_inputs([Path(out)], inputs)
    plan = plan_outputs(base, out, opts["fp16"], stem=stem)
    refuse_inputs(plan.files, inputs)
    check_writable(plan.onnx.parent)
    return plan


def _shapes(opts: dict[str, Any]) -> dict[str, Any]:
    from dehazekit.exporters.tensorrt_build import parse_shape

    return {k: parse_shape(opts[k]) if opts[k] else None for k in ("min_shape", "opt_shape", "max_shape")}


def _profile(net: nn.Module, shapes: dict[str, Any]) -> Any:
    """The engine's shape profile, checked against the backbone's pad multiple before the ONNX is traced."""
    from dehazekit.exporters.tensorrt_build import ShapeProfile
    from dehazekit.models import meta_for

    return ShapeProfile.for_meta(meta_for(net), shapes["min_shape"], shapes["opt_shape"], shapes["max_shape"])


def export(
    model: nn.Module | str | Path | None = None,
    formats: str | Sequence[str] = "onnx",
    *,
    out: str | Path | None = None,
    backbone: str | None = None,
    progress: Callable[[ExportProgress], None] | None = None,
    **options: Any,
) -> ExportResult:
    """Export ``model`` (module, model folder, weights file, or None = the bundled model) to ``formats``.

    ``formats``: names from ``dehazekit.exporters.formats.FORMATS`` ("onnx", "engine"; an engine brings
    its ONNX). ``options``: the arguments in ``formats.ARGS`` (fp16, opset, verify_images, parity_size,
    force, min/opt/max_shape, workspace, timing_cache, builder_level); one that none of the requested
    formats accepts is refused before any work. Files go beside the model, or to ``out`` (a folder or a
    .onnx path); an output that resolves to an input is refused. An artifact failing its parity check
    raises ``ParityError`` and is not written unless ``force=True`` (the report is written either way).
    ``progress`` receives one ``ExportProgress`` per stage (default: logged).
    """
    fmts = resolve_formats(formats)
    opts = resolve_args(fmts, options)
    want_engine = any(f.name == "engine" for f in fmts)
    shapes = _shapes(opts)
    plan = _plan(model, backbone, out, opts)
    names = ["load", "onnx", "parity", "write"] + (["lint", "engine"] if want_engine else [])
    stage = _Stages(names, progress)
    stage("load", str(model) if model is not None and not isinstance(model, nn.Module) else "model")
    net, saved = _load(model, backbone)
    profile = _profile(net, shapes) if want_engine else None
    result = _export_onnx(net, saved, plan, opts, stage)
    if profile is not None:
        _export_engine(result, plan, opts, profile, stage)
    return result


def _export_onnx(
    net: nn.Module, saved: dict[str, Any], plan: Any, opts: dict[str, Any], stage: Any
) -> ExportResult:
    from dehazekit.exporters.onnx_export import build_onnx, check_exportable, write_onnx
    from dehazekit.exporters.verify import verify

    check_exportable(net)
    stage("onnx", f"deploy form, trace, opset {opts['opset']}" + (", fp16" if opts["fp16"] else ""))
    proto, meta = build_onnx(net, opset=opts["opset"], fp16=opts["fp16"], meta_fields=saved)
    stage("parity", "PyTorch vs onnxruntime CPU (Polygraphy Comparator)")
    report = verify(
        net,
        proto,
        images_dir=opts["verify_images"],
        long_side=opts["parity_size"],
        on_case=lambda i, n: stage("parity", f"case {i + 1}/{n}"),
    )
    report.onnx_path = str(plan.onnx)  # the report describes the artifact it gates
    report.save(plan.parity)
    if not report.passed and not opts["force"]:
        report.raise_if_failed()
    if not report.passed:
        log.warning("parity FAILED; %s kept because force=True", plan.onnx)
    stage("write", str(plan.onnx))
    write_onnx(proto, plan.onnx)
    return ExportResult(meta=meta, onnx=plan.onnx, parity=report, parity_path=plan.parity, proto=proto)


def _export_engine(result: ExportResult, plan: Any, opts: dict[str, Any], profile: Any, stage: Any) -> None:
    from dehazekit.exporters import tensorrt_build as tb
    from dehazekit.exporters.trt_lint import lint_onnx

    stage("lint", "TensorRT ONNX parser operator matrix")
    result.lint = lint_onnx(result.proto)
    result.lint.raise_if_failed()
    if not tb.tensorrt_available():
        gen_plan = tb.plan_precision(10, result.meta.precision, opts["fp16"])
        result.trtexec = tb.trtexec_command(
            plan.onnx,
            plan.engine,
            profile,
            gen_plan,
            workspace_gib=opts["workspace"],
            timing_cache=opts["timing_cache"],
            builder_level=opts["builder_level"],
        )
        result.skipped["engine"] = "TensorRT is not installed: pip install 'dehazekit[trt]'"
        stage("engine", "skipped (no TensorRT)")
        return
    stage("engine", f"TensorRT build {profile.min} .. {profile.max}")
    data = result.proto.SerializeToString()
    engine = tb.build_engine(
        data,
        plan.engine,
        fp16=opts["fp16"],
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        workspace_gib=opts["workspace"],
        timing_cache=opts["timing_cache"],
        builder_level=opts["builder_level"],
    )
    result.engine = engine
    result.engine_parity = _engine_parity(result, data, plan, opts, profile)


def _engine_parity(
    result: ExportResult, onnx_bytes: bytes, plan: Any, opts: dict[str, Any], profile: Any
) -> Any:
    from dehazekit.exporters.verify import verify_engine

    report = verify_engine(plan.engine, onnx_bytes, result.meta, profile, long_side=opts["parity_size"])
    report.save(plan.engine_parity)
    result.engine_parity_path = plan.engine_parity
    if not report.passed and not opts["force"]:
        for path in (plan.engine, plan.engine.with_name(plan.engine.name + ".json")):
            path.unlink(missing_ok=True)
        result.engine = None
        report.raise_if_failed()
    return report
