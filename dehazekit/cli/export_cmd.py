"""`dehazekit export`: model -> verified ONNX (fp32 or fp16) -> TensorRT engine where TensorRT exists."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import typer

from dehazekit.cli.console import cli_errors, console, err_console

log = logging.getLogger(__name__)
EXIT_NO_TENSORRT = 3  # the ONNX was written but the requested engine could not be built here


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("export")(export)


def _load_model(model: Path | None, backbone: str | None) -> tuple[Any, Path]:
    """(model, default output path) for a folder, a weights file, --backbone alone, or the default model."""
    from dehazekit.backbones import create_backbone, get_spec
    from dehazekit.models import load_model

    if backbone is not None:
        get_spec(backbone)  # unknown names fail here with suggestions
    if model is None and backbone is not None:
        log.warning("no MODEL given: exporting %s with random initial weights", backbone)
        return create_backbone(backbone).eval(), Path(f"{backbone}.onnx")
    net = load_model(model, backbone=backbone)
    if model is None:
        return net, Path("model.onnx")
    return net, (model / "model.onnx") if model.is_dir() else model.with_suffix(".onnx")


def _export_verified(net: Any, out: Path, req: Any, force: bool) -> Path:
    """Export to a temporary file, verify it, and only then move it to ``out`` (unless --force)."""
    from dehazekit.exporters.onnx_export import export_onnx
    from dehazekit.exporters.verify import verify

    tmp = out.with_name(f".{out.stem}.unverified.onnx")
    try:
        export_onnx(net, tmp, opset=req.opset, fp16=req.fp16)
        report_path = out.with_suffix(".parity.json")
        report = verify(net, tmp, images_dir=req.verify_images)
        report.onnx_path = str(out)  # the report describes the artifact, not the temporary file
        report.save(report_path)
        console.print(report.table())
        if not report.passed and not force:
            report.raise_if_failed()
        if not report.passed:
            err_console.print("[yellow]warning:[/] parity FAILED; artifact kept because of --force")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {report_path.name}")
    return out


def _lint(out: Path, strict: bool) -> None:
    from rich.markup import escape

    from dehazekit.exporters.trt_lint import lint_onnx

    report = lint_onnx(out)
    for issue in report.issues:
        err_console.print(
            f"[yellow]TensorRT lint {issue.severity}:[/] "
            + escape(f"{issue.op} ({issue.node}): {issue.message}")
        )
    if strict:
        report.raise_if_failed()


def _engine(out: Path, req: Any) -> None:
    from rich.markup import escape

    from dehazekit.exporters.onnx_export import read_meta
    from dehazekit.exporters.tensorrt_build import (
        ShapeProfile,
        build_engine,
        plan_precision,
        tensorrt_available,
        trtexec_command,
    )

    engine = out.with_suffix(".engine")
    meta = read_meta(out)
    profile = ShapeProfile.for_meta(
        meta, req.shapes["min_shape"], req.shapes["opt_shape"], req.shapes["max_shape"]
    )
    workspace = req.workspace or 4.0
    if not tensorrt_available():
        plan = plan_precision(10, meta.precision, req.fp16)
        cmd = trtexec_command(
            out, engine, profile, plan, workspace_gib=workspace, timing_cache=req.timing_cache
        )
        err_console.print(
            "[bold yellow]TensorRT is not installed:[/] the ONNX model was written, no engine was "
            "built.\nInstall it with: " + escape("pip install 'dehazekit[trt]'") + "\n"
            f"or build the engine on the target device with:\n  {escape(cmd)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_NO_TENSORRT)
    build_engine(
        out,
        engine,
        fp16=req.fp16,
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        workspace_gib=workspace,
        timing_cache=req.timing_cache,
    )
    console.print(f"wrote {engine} and {engine.name}.json")


def _serving(
    onnx_path: Path, triton: Path | None, deepstream: Path | None, size: str, engine: Path | None
) -> None:
    """--triton / --deepstream (dehazekit.exporters.serving)."""
    if triton is None and deepstream is None:
        return
    from dehazekit.exporters.serving import parse_size, write_deepstream, write_triton_repo

    if triton is not None:
        for config in write_triton_repo(onnx_path, triton, engine=engine):
            console.print(f"wrote {config}")
    if deepstream is not None:
        console.print(
            f"wrote {write_deepstream(onnx_path, deepstream, engine=engine, size=parse_size(size))}"
        )


@cli_errors
def export(
    model: Path | None = typer.Argument(
        None,
        help="Adapt output folder, model.safetensors, or an official "
        "checkpoint with --backbone. Default: the bundled model.",
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Backbone of an official checkpoint (alone: random weights)."
    ),
    onnx: Path | None = typer.Option(None, "--onnx", help="Output ONNX path (default beside MODEL)."),
    trt: bool = typer.Option(
        False, "--trt", help="Also build a TensorRT engine (needs dehazekit\\[trt] and a GPU)."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 weights/compute with fp32 input/output."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    min_shape: str | None = typer.Option(None, "--min-shape", help="TensorRT profile min, e.g. 1x3x256x256."),
    opt_shape: str | None = typer.Option(None, "--opt-shape", help="TensorRT profile opt (default 720p)."),
    max_shape: str | None = typer.Option(None, "--max-shape", help="TensorRT profile max (default 1080p)."),
    workspace: float | None = typer.Option(
        None, "--workspace", help="TensorRT workspace in GiB (default 4)."
    ),
    timing_cache: Path | None = typer.Option(
        None, "--timing-cache", help="TensorRT timing cache file (reused)."
    ),
    verify_images: Path | None = typer.Option(
        None, "--verify-images", help="Also verify parity on these photos."
    ),
    force: bool = typer.Option(False, "--force", help="Keep an artifact that fails the parity check."),
    int8: bool = typer.Option(False, "--int8", help="INT8 (needs calibration data; not supported yet)."),
    # --- serving configs block ---
    triton: Path | None = typer.Option(
        None, "--triton", help="Also write a Triton model repository (config.pbtxt + model) here."
    ),
    deepstream: Path | None = typer.Option(
        None, "--deepstream", help="Also write a DeepStream nvinfer config (+ model) here."
    ),
    deepstream_size: str = typer.Option(
        "720x1280", "--deepstream-size", help="DeepStream network input HEIGHTxWIDTH."
    ),
) -> None:
    """Export a model to ONNX with a parity report vs PyTorch, and optionally a TensorRT engine.

    Exit codes: 0 ok, 2 invalid request or failed parity, 3 ONNX written but TensorRT is not installed.
    """
    from dehazekit.cli.guard import clean_stale_temporaries, guard_outputs, model_files
    from dehazekit.exporters.formats import ExportRequest

    if onnx is not None:  # before torch loads: an output must never replace the weights it comes from
        inputs = [*model_files(model), verify_images]
        guard_outputs([onnx, onnx.with_suffix(".parity.json")], inputs, "--onnx")
    req = ExportRequest(
        trt=trt,
        fp16=fp16,
        int8=int8,
        opset=opset,
        min_shape=min_shape,
        opt_shape=opt_shape,
        max_shape=max_shape,
        workspace=workspace,
        timing_cache=timing_cache,
        verify_images=verify_images,
    )
    net, default_out = _load_model(model, backbone)
    from dehazekit.exporters.onnx_export import check_exportable

    check_exportable(net)
    out = onnx or (default_out.with_suffix(".fp16.onnx") if fp16 else default_out)
    written = [out, out.with_suffix(".parity.json"), out.with_suffix(".engine")]
    guard_outputs(written, [*model_files(model), verify_images], "--onnx")
    clean_stale_temporaries(out.parent)
    _export_verified(net, out, req, force)
    _lint(out, strict=trt)
    serving = (triton, deepstream, deepstream_size)
    _serving(out, *serving, engine=None)  # written even where no engine can be built
    if trt:
        _engine(out, req)
        _serving(out, *serving, engine=out.with_suffix(".engine"))  # now with the TensorRT plan
