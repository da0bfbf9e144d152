"""Throughput measurements shared by `dehazekit bench` and benchmarks/runtime.py.

model-only: ``backend.infer`` on a ready, padded float batch (what the network costs).
end-to-end: uint8 frames through the threaded pipeline (pre/post, padding, batching, queues) into
a sink; the ratio says how much of the model's speed the pipeline keeps.
On GPUs: host<->device copy time per batch from the backend's CUDA events (backends with an
OverlappedRunner) and the GPU's utilisation during the end-to-end run (pynvml, when installed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dehazekit.runtimes.backends import open_backend
from dehazekit.runtimes.dehazer import Dehazer
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.gpu_stats import GpuSampler
from dehazekit.runtimes.pipeline import run_pipeline
from dehazekit.runtimes.processing import plan_padding, to_layout
from dehazekit.runtimes.sources import CallbackSink
from dehazekit.runtimes.streams import IterableSource


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720) as (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ConfigError.build(
            "size must look like WIDTHxHEIGHT", got=text, expected="e.g. 1280x720"
        ) from exc
    if width < 1 or height < 1:
        raise ConfigError.build("size must be positive", got=text)
    return width, height


def parse_batches(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError.build("batch list must be integers", got=text, expected="e.g. 1,4") from exc
    if not values or min(values) < 1:
        raise ConfigError.build("batch sizes must be >= 1", got=text)
    return values


def model_only_fps(
    backend: Any, width: int, height: int, batch: int, seconds: float = 2.0, warmup: int = 2
) -> float:
    """Frames per second of ``backend.infer`` alone on a padded random batch."""
    meta = backend.meta
    pad = plan_padding(height, width, meta)
    low, high = meta.value_range
    rng = np.random.default_rng(0)
    x = rng.uniform(low, high, (batch, 3, height + pad.pad_h, width + pad.pad_w)).astype(np.float32)
    x = to_layout(x, meta)
    for _ in range(warmup):
        backend.infer(x)
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < seconds:
        backend.infer(x)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def end_to_end_fps(dehazer: Dehazer, width: int, height: int, frames: int) -> float:
    """Frames per second of the full pipeline on ``frames`` synthetic uint8 frames to a null sink."""
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    source = IterableSource(pool[i % len(pool)] for i in range(frames))
    dehazer.process_batch(pool[: dehazer.batch])  # warm-up outside the timing
    report = run_pipeline(source, CallbackSink(lambda item, frame: None), dehazer)
    return report.fps


def copy_times(backend: Any) -> Any | None:
    """The CopyTimes of a backend that stages through an OverlappedRunner (TensorRT, ORT CUDA), else None."""
    runner = getattr(backend, "runner", None) or getattr(getattr(backend, "cuda_io", None), "runner", None)
    return getattr(runner, "times", None)


def gpu_columns(
    backend: Any, before: tuple[float, float, int] | None, sampler: GpuSampler
) -> dict[str, float]:
    """Per-batch H2D/D2H milliseconds over the end-to-end run, plus the GPU sampler's summary."""
    row = dict(sampler.summary())
    times = copy_times(backend)
    if times is not None and before is not None and times.batches > before[2]:
        batches = times.batches - before[2]
        row.update(h2d_ms=(times.h2d_ms - before[0]) / batches, d2h_ms=(times.d2h_ms - before[1]) / batches)
    return row


def _snapshot(backend: Any) -> tuple[float, float, int] | None:
    times = copy_times(backend)
    return (times.h2d_ms, times.d2h_ms, times.batches) if times is not None else None


def backend_variants(model: Path, device: str) -> list[dict[str, Any]]:
    """One entry per backend to compare: each usable ONNX Runtime provider alone, else the file's backend."""
    if model.suffix.lower() != ".onnx":
        return [{"label": model.suffix.lstrip("."), "device": device, "providers": None}]
    import onnxruntime as ort

    from dehazekit.runtimes.backends.onnx_backend import choose_providers

    chosen = choose_providers(device, None, ort.get_available_providers())
    return [
        {"label": f"onnxruntime/{p.replace('ExecutionProvider', '')}", "device": device, "providers": [p]}
        for p in chosen
    ]


def bench(
    model: Path,
    size: tuple[int, int],
    batches: Sequence[int],
    device: str = "auto",
    frames: int = 32,
    seconds: float = 2.0,
) -> list[dict[str, Any]]:
    """Rows of {backend, batch, model_fps, pipeline_fps, ratio} for every backend variant and batch."""
    width, height = size
    rows = []
    for variant in backend_variants(Path(model), device):
        backend = open_backend(model, device=variant["device"], providers=variant["providers"])
        try:
            for batch in batches:
                model_fps = model_only_fps(backend, width, height, batch, seconds)
                before = _snapshot(backend)
                with GpuSampler() as sampler:
                    pipe_fps = end_to_end_fps(
                        Dehazer(backend, batch=batch), width, height, max(frames, 2 * batch)
                    )
                rows.append(
                    {
                        "backend": variant["label"],
                        "batch": batch,
                        "model_fps": model_fps,
                        "pipeline_fps": pipe_fps,
                        "ratio": pipe_fps / model_fps if model_fps else 0.0,
                        **gpu_columns(backend, before, sampler),
                    }
                )
        finally:
            backend.close()
    return rows
