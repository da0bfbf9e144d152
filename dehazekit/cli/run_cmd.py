"""`dehazekit run` (images, folders, globs, videos, streams -> dehazed output) and `dehazekit bench`.

Only runtimes is imported, inside the commands: these work on a machine without torch as long as the
model is ONNX or a TensorRT engine.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from dehazekit.cli.console import cli_errors, console

log = logging.getLogger(__name__)


def _default_model() -> Path:
    """The bundled default model, or a clear error asking for --model."""
    from dehazekit.runtimes.errors import ConfigError

    path = None
    try:
        from dehazekit.models import default_model_path

        path = default_model_path()
    except (ImportError, AttributeError):
        path = None
    except Exception as exc:  # a bundled model that is missing on disk reports itself here
        log.debug("default model unavailable: %s", exc)
    if path is None or not (Path(path) / "model.safetensors").is_file():
        raise ConfigError.build("no model given and no bundled default model is installed",
                                fix="pass --model PATH (an .onnx, .engine, .safetensors or model folder)")
    return Path(path)


def _progress(total: int | None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]dehazing"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeElapsedColumn()]
    progress = Progress(*columns, console=console, transient=False)
    task = progress.add_task("run", total=total, fps=0.0)

    def on_frame(report: Any) -> None:
        import time

        elapsed = time.perf_counter() - on_frame.start  # type: ignore[attr-defined]
        progress.update(task, completed=report.frames, fps=report.frames / elapsed if elapsed > 0 else 0.0)

    return progress, on_frame


def _summary(report: Any) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rows = [("frames", str(report.frames)), ("seconds", f"{report.seconds:.2f}"), ("fps", f"{report.fps:.2f}"),
            ("backend", str(report.backend.get("backend"))),
            ("providers", ", ".join(map(str, report.backend.get("providers", [])))),
            ("output", str(report.output)), ("skipped", str(len(report.skipped)))]
    for key, value in rows:
        table.add_row(f"[bold]{key}", value)
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.item}: {skipped.reason}", highlight=False, soft_wrap=True)


@cli_errors
def run(
    source: str = typer.Argument(..., help="Image, folder, glob, video, rtsp:// URL or camera index."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Model file (.onnx, .engine, .safetensors)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file or folder (default: beside input)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Frames per inference call."),
    tile: int | None = typer.Option(None, "--tile", help="Run frames larger than this as overlapping tiles."),
    overlap: int = typer.Option(64, "--overlap", min=0, help="Tile overlap in pixels."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Write input and dehazed frames side by side."),
    bgr: bool = typer.Option(False, "--bgr", help="Carry frames as BGR end to end (saves swaps for OpenCV)."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop a camera/stream after N."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not copy the audio track."),
    preset: str = typer.Option("superfast", "--preset", help="x264 preset for video output (speed vs size)."),
    # --- scale-out (engine) block ---
    engine: str = typer.Option("local", "--engine", help="local (threads here) or ray (a Ray cluster)."),
    address: str | None = typer.Option(None, "--address", help="Ray: auto, ray://HOST:PORT (default: local)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Ray: actors, each holding one model."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="Ray: GPUs per actor (0.25 ok)."),
    chunk_frames: int | None = typer.Option(None, "--chunk-frames", min=1, help="Ray: video frames per task."),
) -> None:
    """Dehaze images, folders, videos or a live stream."""
    import time

    if engine != "local":
        _run_engine(engine, source, model or _default_model(), out,
                    {"device": device, "batch": batch, "tile": tile, "overlap": overlap, "bgr": bgr},
                    {"address": address, "workers": workers, "gpus_per_worker": gpus_per_worker,
                     "chunk_frames": chunk_frames},
                    side_by_side=side_by_side, copy_audio=not no_audio, preset=preset)
        return

    from dehazekit.runtimes.dehazer import Dehazer
    from dehazekit.runtimes.pipeline import Pipeline
    from dehazekit.runtimes.sources import SideBySideSink, default_output, open_sink, open_source

    model_path = model or _default_model()
    dehazer = Dehazer(model_path, device=device, batch=batch, tile=tile, overlap=overlap, bgr=bgr)
    src = open_source(source, bgr=bgr, max_frames=max_frames)
    target = out or default_output(src)
    sink = open_sink(target, src, bgr=bgr, copy_audio=not no_audio, preset=preset)
    if side_by_side:
        sink = SideBySideSink(sink)
    progress, on_frame = _progress(src.info.frame_count)
    with progress, dehazer:
        on_frame.start = time.perf_counter()  # type: ignore[attr-defined]
        report = Pipeline(dehazer, on_frame=on_frame).run(src, sink)
    report.output = str(target)
    _summary(report)


def _run_engine(engine: str, source: str, model: Path, out: Path | None, dehazer: dict[str, Any],
                engine_options: dict[str, Any], **kwargs: Any) -> None:
    """--engine ray: the same run on a Ray cluster (dehazekit.runtimes.ray_engine), same summary."""
    from dehazekit.runtimes.errors import ConfigError

    if engine != "ray":
        raise ConfigError.build("unknown --engine", got=engine, expected="local or ray")
    from dehazekit.runtimes.ray_engine import RayOptions, import_ray, run_ray

    import_ray()  # the install fix before any work
    options = RayOptions(**{k: v for k, v in engine_options.items() if v is not None})
    progress, on_frame = _progress(None)
    with progress:
        import time

        on_frame.start = time.perf_counter()  # type: ignore[attr-defined]
        report = run_ray(source, model, out, options=options, dehazer=dehazer, on_progress=on_frame, **kwargs)
    _summary(report)


@cli_errors
def bench(
    model: Path = typer.Argument(..., help="Model file to measure."),
    size: str = typer.Option("1280x720", "--size", help="Frame size WIDTHxHEIGHT."),
    batch: str = typer.Option("1,4", "--batch", help="Comma-separated batch sizes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    frames: int = typer.Option(32, "--frames", min=2, help="Frames per end-to-end run."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.0, help="Minimum model-only timing per row."),
) -> None:
    """Model-only vs end-to-end pipeline frames per second, per backend and batch size."""
    from rich.table import Table

    from dehazekit.runtimes.bench import bench as run_bench
    from dehazekit.runtimes.bench import parse_batches, parse_size

    rows = run_bench(model, parse_size(size), parse_batches(batch), device=device, frames=frames, seconds=seconds)
    table = Table(title=f"{model.name} at {size}")
    for column in ("backend", "batch", "model-only fps", "end-to-end fps", "ratio"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for row in rows:
        table.add_row(row["backend"], str(row["batch"]), f"{row['model_fps']:.2f}", f"{row['pipeline_fps']:.2f}",
                      f"{row['ratio']:.2f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("run")(run)
    app.command("bench")(bench)
