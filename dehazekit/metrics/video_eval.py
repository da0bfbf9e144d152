"""`dehazekit eval --video`: dehaze a video through the runtime and report flicker (and FADE).

The model runs once per frame through ``dehazekit.runtimes.Dehazer`` (ONNX, engine or torch model,
whatever the file is); the stabiliser, being causal and a pure post-process, is applied to those same
outputs, so raw and stabilised numbers come from one model pass. Frames larger than ``max_side`` are
downscaled (Lanczos) first and everything is scored at that size.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dehazekit.metrics.flicker import FlickerMeter
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.io_utils import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class VideoEvalConfig:
    video: Path
    model: Path | None = None
    max_frames: int | None = None
    max_side: int | None = None
    stabilize: bool = False
    fade_params: Path | None = None
    out: Path | None = None
    keep_frames: tuple[int, ...] = ()  # frame indices whose (input, raw, stabilised...) are returned
    variants: dict[str, Any] = field(default_factory=dict)  # extra name -> StabilizerConfig to score

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError.build("--max-frames must be >= 2 for flicker", got=self.max_frames)
        if self.max_side is not None and self.max_side < 16:
            raise ConfigError.build("--max-side too small", got=self.max_side, expected=">= 16 or 0 (off)")


@dataclass
class VideoEvalResult:
    video: str
    model: str
    frames: int = 0
    size: tuple[int, int] = (0, 0)
    flicker: dict[str, dict[str, float]] = field(default_factory=dict)
    fade: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    kept: dict[int, list[np.ndarray]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "model": self.model,
            "frames": self.frames,
            "size": list(self.size),
            "flicker": self.flicker,
            "fade": self.fade,
            "seconds": self.seconds,
        }


def _downscale(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side or max(frame.shape[:2]) <= max_side:
        return frame
    from PIL import Image

    scale = max_side / max(frame.shape[:2])
    size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


def _frames(video: Path, max_frames: int | None, max_side: int | None):
    from dehazekit.runtimes.sources import open_source

    source = open_source(str(video), max_frames=max_frames)
    try:
        for index, item in enumerate(source):
            if max_frames is not None and index >= max_frames:
                return
            yield _downscale(item.image, max_side)
    finally:
        source.close()


def evaluate_video(cfg: VideoEvalConfig) -> VideoEvalResult:
    """Flicker of the dehazed video (and of the stabilised one), mean FADE per frame when params exist."""
    import time

    from dehazekit.metrics.eval import resolve_model_path
    from dehazekit.runtimes.dehazer import Dehazer
    from dehazekit.runtimes.stabilize import Stabilizer

    model_path = resolve_model_path(cfg.model)
    fade_params = None
    if cfg.fade_params is not None:
        from dehazekit.metrics.fade import FadeParams

        fade_params = FadeParams.load(cfg.fade_params)
    configs = {"stabilized": None} if cfg.stabilize else {}
    stabilizers = {name: Stabilizer(c) for name, c in {**configs, **cfg.variants}.items()}
    meters = {v: FlickerMeter() for v in ["raw", *stabilizers]}
    fades: dict[str, list[float]] = {v: [] for v in ["input", *meters]}
    result = VideoEvalResult(video=str(cfg.video), model=str(model_path))
    seconds = {"model": 0.0, "stabilizer": 0.0}
    with Dehazer(model_path) as dehazer:
        for index, frame in enumerate(_frames(cfg.video, cfg.max_frames, cfg.max_side)):
            start = time.perf_counter()
            outs = {"raw": dehazer(frame)}
            seconds["model"] += time.perf_counter() - start
            for name, stabilizer in stabilizers.items():
                start = time.perf_counter()
                outs[name] = stabilizer.step(frame, outs["raw"])
                if name == "stabilized":
                    seconds["stabilizer"] += time.perf_counter() - start
            for name, out in outs.items():
                meters[name].update(frame, out)
            _score_fade(fade_params, fades, frame, outs)
            if index in cfg.keep_frames:
                result.kept[index] = [frame, *outs.values()]
            result.frames, result.size = index + 1, (frame.shape[1], frame.shape[0])
    result.flicker = {name: meter.result() for name, meter in meters.items()}
    result.fade = {name: float(np.mean(vals)) for name, vals in fades.items() if vals}
    result.seconds = seconds
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "video_report.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _score_fade(
    params: Any, fades: dict[str, list[float]], frame: np.ndarray, outs: dict[str, np.ndarray]
) -> None:
    if params is None:
        return
    from dehazekit.metrics.fade import fade

    fades["input"].append(fade(frame, params))
    for name, out in outs.items():
        fades[name].append(fade(out, params))


def print_video_report(result: VideoEvalResult, console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"flicker of {Path(result.video).name} ({result.frames} frames at "
        f"{result.size[0]}x{result.size[1]})"
    )
    for column in ("output", "flicker ratio", "static change", "brightness std", "mean FADE"):
        table.add_column(column, justify="left" if column == "output" else "right")
    first = next(iter(result.flicker.values()))
    table.add_row(
        "input",
        "1.000",
        f"{first['static_change_in']:.5f}",
        f"{first['brightness_std_in']:.4f}",
        f"{result.fade['input']:.3f}" if "input" in result.fade else "-",
    )
    for name, f in result.flicker.items():
        table.add_row(
            name,
            f"{f['ratio']:.3f}",
            f"{f['static_change_out']:.5f}",
            f"{f['brightness_std_out']:.4f}",
            f"{result.fade[name]:.3f}" if name in result.fade else "-",
        )
    console.print(table)
