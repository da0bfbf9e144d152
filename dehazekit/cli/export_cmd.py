"""`dehazekit export`: a thin layer over ``dehazekit.exporters.export``.

The format options (flag, type, default, help) come from the export format table
(``dehazekit.exporters.formats.ARGS``), so the CLI, the Python API and the README table cannot drift.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from dehazekit.cli.console import cli_errors, console, err_console
from dehazekit.exporters.formats import ARGS

EXIT_NO_TENSORRT = 3  # the ONNX was written but the requested engine could not be built here


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("export")(export)


def _progress(event: Any) -> None:
    # One plain line per stage: readable in logs, pipes and CI as well as on a terminal.
    err_console.print(event.line(), highlight=False, soft_wrap=True, markup=False)


def _report(result: Any) -> None:
    from rich.markup import escape

    console.print(result.parity.table())
    if not result.parity.passed:
        err_console.print("[yellow]warning:[/] parity FAILED; artifact kept because of --force")
    if result.lint is not None:
        for issue in result.lint.issues:
            err_console.print(
                f"[yellow]TensorRT lint {issue.severity}:[/] "
                + escape(f"{issue.op} ({issue.node}): {issue.message}")
            )
    size = result.onnx.stat().st_size / 1e6
    console.print(
        escape(f"wrote {result.onnx} ({size:.1f} MB) and {result.parity_path.name}"), soft_wrap=True
    )
    if result.engine is not None:
        console.print(escape(f"wrote {result.engine} and {result.engine.name}.json"), soft_wrap=True)
    if "engine" in result.skipped:
        err_console.print(
            "[bold yellow]TensorRT is not installed:[/] the ONNX model was written, no engine was "
            "built.\nInstall it with: " + escape("pip install 'dehazekit[trt]'") + "\n"
            f"or build the engine on the target device with:\n  {escape(result.trtexec)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_NO_TENSORRT)


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
    model: Path | None = None,
    out: Path | None = None,
    onnx: Path | None = None,
    backbone: str | None = None,
    trt: bool = False,
    triton: Path | None = None,
    deepstream: Path | None = None,
    deepstream_size: str = "720x1280",
    **options: Any,
) -> None:
    """Export a model to ONNX with a parity report vs PyTorch, and optionally a TensorRT engine.

    Files go beside MODEL (or to --out). Exit codes: 0 ok, 2 invalid request or failed parity,
    3 ONNX written but TensorRT is not installed.
    """
    from dehazekit.cli.guard import clean_stale_temporaries, guard_outputs, model_files
    from dehazekit.exporters import export as run_export

    if onnx is not None and out is not None:
        from dehazekit.runtimes.errors import ConfigError

        raise ConfigError.build("--onnx is the old name of --out", got="both", fix="give only --out")
    target, flag = (onnx, "--onnx") if onnx is not None else (out, "--out")
    bundled = None
    if model is None and backbone is None and target is None:
        # the bundled model: its exports go to the user cache, where `dehazekit run` finds them (the package
        # folder may be read-only and is no place for outputs)
        from dehazekit.cli.run_model import cache_target
        from dehazekit.models import default_model_path

        bundled = default_model_path()
        target = cache_target(bundled) / "model.onnx"
    if target is not None:  # named by the flag the user typed; the library checks every file it writes
        guard_outputs([target], [*model_files(model), options.get("verify_images")], flag)
    result = run_export(
        model,
        ["onnx", "engine"] if trt else ["onnx"],
        out=target,
        backbone=backbone,
        progress=_progress,
        **options,
    )
    clean_stale_temporaries(result.onnx.parent)  # what a killed earlier export left beside the model
    if bundled is not None and result.parity.passed:
        from dehazekit.cli.run_model import stamp_verified

        stamp_verified(result.onnx.parent, bundled / "model.safetensors")
    _serving(result.onnx, triton, deepstream, deepstream_size, engine=result.engine)
    _report(result)


def _signature() -> inspect.Signature:
    """MODEL, --out/-o, --backbone, --trt, then one option per row of the format table."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    fixed = [
        ("model", Path | None, typer.Argument(None, help=_MODEL_HELP, show_default=False)),
        ("out", Path | None, typer.Option(None, "--out", "-o", help=_OUT_HELP, show_default=False)),
        ("onnx", Path | None, typer.Option(None, "--onnx", hidden=True)),
        ("backbone", str | None, typer.Option(None, "--backbone", help=_BACKBONE_HELP)),
        ("trt", bool, typer.Option(False, "--trt", help=_TRT_HELP)),
        ("triton", Path | None, typer.Option(None, "--triton", help=_TRITON_HELP, show_default=False)),
        (
            "deepstream",
            Path | None,
            typer.Option(None, "--deepstream", help=_DEEPSTREAM_HELP, show_default=False),
        ),
        (
            "deepstream_size",
            str,
            typer.Option("720x1280", "--deepstream-size", help="DeepStream network input HxW."),
        ),
    ]
    params = [inspect.Parameter(name, kind, default=default, annotation=ann) for name, ann, default in fixed]
    for arg in ARGS.values():
        annotation = arg.type if arg.default is not None else arg.type | None
        option = typer.Option(arg.default, arg.flag, help=arg.help, show_default=arg.type is not bool)
        params.append(inspect.Parameter(arg.name, kind, default=option, annotation=annotation))
    return inspect.Signature(params, return_annotation=None)


_MODEL_HELP = (
    "Adapt output folder, model.safetensors, or an official checkpoint with --backbone. "
    "Default: bundled model."
)
_OUT_HELP = "Output folder or .onnx path (default: beside MODEL). Never an input file."
_BACKBONE_HELP = "Backbone of an official checkpoint (alone: random weights, needs --out)."
_TRITON_HELP = "Also write a Triton model repository (config.pbtxt + model) here."
_DEEPSTREAM_HELP = "Also write a DeepStream nvinfer config (+ model) here."
_TRT_HELP = "Also build a TensorRT engine (needs dehazekit\\[trt] and a GPU)."

export.__signature__ = _signature()  # type: ignore[attr-defined]
export.__annotations__ = {p.name: p.annotation for p in export.__signature__.parameters.values()}
