"""`dehazekit run` (images, folders, globs, videos, streams -> dehazed output) and `dehazekit bench`.

Only runtimes is imported, inside the commands: these work on a machine without torch as long as the
model is ONNX or a TensorRT engine. The default model runs through a cached, verified ONNX copy
(run_model); output safety, progress and the summary live in run_support.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from dehazekit.cli.console import cli_errors, console

log = logging.getLogger(__name__)


def _default_model_folder() -> Path:
    """The bundled default model's folder, or a clear error asking for --model."""
    from dehazekit.runtimes.errors import ConfigError

    path = None
    try:
        from dehazekit.models import default_model_path

        path = default_model_path()
    except (ImportError, AttributeError):
        path = None
    except Exception as exc:  # noqa: BLE001 - a bundled model that is missing on disk reports itself here
        log.debug("default model unavailable: %s", exc)
    if path is None or not (Path(path) / "model.safetensors").is_file():
        raise ConfigError.build(
            "no model given and no bundled default model is installed",
            fix="pass --model PATH (an .onnx, .engine, .safetensors or model folder)",
        )
    return Path(path)


@cli_errors
def run(
    source: str = typer.Argument(..., help="Image, folder, glob, video, rtsp:// URL or camera index."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Model file or folder (default: bundled)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file or folder (default: beside input)."
    ),
    batch: int = typer.Option(1, "--batch", min=1, help="Frames per inference call."),
    tile: int | None = typer.Option(None, "--tile", help="Run frames larger than this as overlapping tiles."),
    overlap: int = typer.Option(64, "--overlap", min=0, help="Tile overlap in pixels."),
    max_memory: str = typer.Option(
        "auto",
        "--max-memory",
        help="Activation memory budget (e.g. 4G); larger frames are tiled. "
        "auto: half the free RAM; off: never tile on its own.",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Inference threads (default: cores left after decode/encode)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Write input and dehazed frames side by side."
    ),
    bgr: bool = typer.Option(False, "--bgr", help="Carry frames as BGR end to end (saves swaps for OpenCV)."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop a camera/stream after N."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not copy the audio track."),
    preset: str = typer.Option("superfast", "--preset", help="x264 preset for video output (speed vs size)."),
    stabilize: bool = typer.Option(False, "--stabilize", help="Temporal stabiliser against flicker (video)."),
    bank: Path | None = typer.Option(None, "--bank", help="Adapter bank folder (dehazekit bank build)."),
    adapter: str | None = typer.Option(None, "--adapter", help="Bank adapter to run (default: the base)."),
    route: str = typer.Option("off", "--route", help="auto: pick the bank adapter per frame from the haze."),
    # --- scale-out (engine) block ---
    engine: str = typer.Option("local", "--engine", help="local (threads here) or ray (a Ray cluster)."),
    address: str | None = typer.Option(None, "--address", help="Ray: auto or ray://HOST:PORT (none: local)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Ray: actors, each holding one model."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", min=0.0, help="Ray: GPUs per actor (0.25: four per GPU)."
    ),
    chunk_frames: int | None = typer.Option(None, "--chunk-frames", min=1, help="Ray: frames per task."),
) -> None:
    """Dehaze images, folders, videos or a live stream. Inputs are never modified or overwritten."""
    if engine != "local":
        from dehazekit.cli.run_engine import run_engine

        if bank is not None or stabilize or route != "off":
            from dehazekit.runtimes.errors import ConfigError

            raise ConfigError.build(
                "--bank, --route and --stabilize run on the local engine only",
                got=f"--engine {engine}",
                fix="drop them or use --engine local",
            )

        run_engine(
            engine,
            source,
            model,
            None if model is not None else _default_model_folder(),
            out,
            {
                "device": device,
                "batch": batch,
                "tile": tile,
                "overlap": overlap,
                "bgr": bgr,
                "max_memory": max_memory,
                "threads": threads,
            },
            {
                "address": address,
                "workers": workers,
                "gpus_per_worker": gpus_per_worker,
                "chunk_frames": chunk_frames,
            },
            side_by_side=side_by_side,
            copy_audio=not no_audio,
            preset=preset,
        )
        return
    from dehazekit.cli.run_model import choose_model
    from dehazekit.cli.run_support import prepare_outputs, progress, summary
    from dehazekit.cli.video_opts import check_model_choice, print_routes, wrap_dehazer
    from dehazekit.runtimes.backends import backend_key
    from dehazekit.runtimes.budget import inference_threads, parse_memory
    from dehazekit.runtimes.dehazer import Dehazer
    from dehazekit.runtimes.pipeline import Pipeline
    from dehazekit.runtimes.sources import SideBySideSink, default_output, open_sink, open_source

    check_model_choice(model, bank, adapter)
    budget = "auto" if max_memory.strip().lower() == "auto" else parse_memory(max_memory)
    for given in (model, bank):
        if given is not None:
            backend_key(given)  # a missing model or unknown suffix fails now, before any input is opened
    src = open_source(source, bgr=bgr, max_frames=max_frames)
    target = out or default_output(src)
    sink = open_sink(target, src, bgr=bgr, copy_audio=not no_audio, preset=preset)
    if side_by_side:
        sink = SideBySideSink(sink)
    plan = prepare_outputs(src, sink)  # before any work: refuses outputs that would overwrite inputs
    if bank is not None:
        model_path, model_note = bank, f"adapter bank {bank}"
    else:
        choice = choose_model(model, None if model is not None else _default_model_folder())
        model_path, model_note = choice.path, choice.note or choice.route
    n_threads, why = inference_threads(src.info.kind, threads)
    dehazer = Dehazer(
        model_path,
        device=device,
        batch=batch,
        tile=tile,
        overlap=overlap,
        bgr=bgr,
        max_memory=budget,
        threads=n_threads,
        adapter=adapter,
    )
    dehazer, router = wrap_dehazer(dehazer, stabilize=stabilize, route=route)
    bar, on_frame = progress(src.info.frame_count)
    with bar, dehazer:
        report = Pipeline(dehazer, on_frame=on_frame).run(src, sink)
        backend = dehazer.describe()
    report.output = str(target)
    if getattr(src, "rotation", 0):
        plan.notes.append(f"display rotation {src.rotation} applied to the pixels (output upright, no tag)")
    summary(report, backend, model_note, f"{backend.get('threads', n_threads)} inference ({why})", plan)
    print_routes(router)


@cli_errors
def bench(
    model: Path = typer.Argument(..., help="Model file to measure."),
    size: str = typer.Option("1280x720", "--size", help="Frame size WIDTHxHEIGHT."),
    batch: str = typer.Option("1,4", "--batch", help="Comma-separated batch sizes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    frames: int = typer.Option(32, "--frames", min=2, help="Frames per end-to-end run."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.0, help="Minimum model-only timing per row."),
) -> None:
    """Model-only vs end-to-end fps per backend and batch size (on GPUs: copy times, GPU utilisation)."""
    from dehazekit.runtimes.bench import bench as run_bench
    from dehazekit.runtimes.bench import parse_batches, parse_size

    rows = run_bench(
        model, parse_size(size), parse_batches(batch), device=device, frames=frames, seconds=seconds
    )
    console.print(bench_table(rows, f"{model.name} at {size}"))


# column -> (row key, format); the GPU columns appear only when some row has them
BENCH_COLUMNS = {
    "backend": ("backend", "{}"),
    "batch": ("batch", "{}"),
    "model-only fps": ("model_fps", "{:.2f}"),
    "end-to-end fps": ("pipeline_fps", "{:.2f}"),
    "ratio": ("ratio", "{:.2f}"),
    "H2D ms/batch": ("h2d_ms", "{:.2f}"),
    "D2H ms/batch": ("d2h_ms", "{:.2f}"),
    "GPU util %": ("gpu_util_pct", "{:.0f}"),
    "GPU mem MiB": ("gpu_mem_peak_mb", "{:.0f}"),
}


def bench_table(rows: list[dict], title: str):
    from rich.table import Table

    shown = {name: spec for name, spec in BENCH_COLUMNS.items() if any(spec[0] in row for row in rows)}
    table = Table(title=title)
    for column in shown:
        table.add_column(column, justify="left" if column == "backend" else "right")
    for row in rows:
        table.add_row(*(fmt.format(row[key]) if key in row else "-" for key, fmt in shown.values()))
    return table


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("run")(run)
    app.command("bench")(bench)
