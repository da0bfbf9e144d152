"""Dehaze a folder with a model and report before/after metrics: a table, JSON and a contact sheet.

The model runs through ``dehazekit.models.load_model`` and
``dehazekit.backbones.forward_padded`` in torch. Images larger than ``max_side`` are downscaled
(Lanczos) before both dehazing and scoring, so before/after are compared at the same size; ground
truth is resized to the hazy image's evaluated size.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dehazekit.runtimes.errors import ConfigError, InputError
from dehazekit.runtimes.io_utils import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)
FULL_REF = ("psnr", "ssim")


@dataclass
class EvalConfig:
    hazy: Path
    model: Path | None = None
    clear: Path | None = None
    metrics: str | list[str] = "fade,dark_channel,colourfulness,entropy,naturalness"
    fade_params: Path | None = None
    out: Path | None = None
    max_side: int | None = 1024
    sheet_rows: int = 12

    def __post_init__(self) -> None:
        from dehazekit.metrics.noref import NOREF

        names = (
            self.metrics if isinstance(self.metrics, list) else [m.strip() for m in self.metrics.split(",")]
        )
        names = [m for m in names if m]
        known = set(NOREF) | {"fade", *FULL_REF}
        unknown = [m for m in names if m not in known]
        if unknown:
            raise ConfigError.build("unknown metric", got=unknown, expected=sorted(known))
        if self.fade_params is None and os.environ.get("DEHAZEKIT_FADE_PARAMS"):
            self.fade_params = Path(os.environ["DEHAZEKIT_FADE_PARAMS"])
        if "fade" in names and self.fade_params is None:
            log.warning(
                "FADE skipped: its parameters are not shipped; pass --fade-params DIR "
                "(LIVE's natural_fog*_image_features_ps8.mat) or set DEHAZEKIT_FADE_PARAMS"
            )
            names.remove("fade")
        if self.clear is None:
            names = [m for m in names if m not in FULL_REF]
        elif not any(m in FULL_REF for m in names):
            names += list(FULL_REF)
        self.metrics = names
        if self.max_side is not None and self.max_side < 16:
            raise ConfigError.build("--max-side too small", got=self.max_side, expected=">= 16 or 0 (off)")


@dataclass
class EvalReport:
    model: str
    metrics: list[str]
    images: list[dict[str, Any]] = field(default_factory=list)
    mean: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metrics": self.metrics,
            "mean": self.mean,
            "images": self.images,
            "notes": self.notes,
        }


def _pair_key(stem: str) -> str:
    """'27_outdoor_hazy' and '27_outdoor_GT' share the key '27_outdoor'."""
    parts = [
        p
        for p in re.split(r"[_\-\s]+", stem.lower())
        if p not in {"hazy", "haze", "gt", "clear", "clean", "foggy"}
    ]
    return "_".join(parts)


def _match_clear(hazy_files: list[Path], clear_dir: Path | None) -> dict[Path, Path]:
    if clear_dir is None:
        return {}
    from dehazekit.data.images import list_images

    hazy_set = {h.resolve() for h in hazy_files}
    # A folder holding both hazy and GT files (O-HAZE's layout) must not pair an image with itself.
    clear = [p for p in list_images(clear_dir, "ground-truth folder") if p.resolve() not in hazy_set]
    by_stem = {p.stem: p for p in clear}
    by_key = {_pair_key(p.stem): p for p in clear}
    pairs = {h: by_stem.get(h.stem) or by_key.get(_pair_key(h.stem)) for h in hazy_files}
    missing = [h.name for h, c in pairs.items() if c is None]
    if missing:
        raise InputError.build(
            "no ground truth for some hazy images",
            got=missing[:5],
            expected=f"same file stem in {clear_dir} (or the stem without _hazy/_GT)",
        )
    return pairs


def _score(img: np.ndarray, names: list[str], fade_params: Any, ref: np.ndarray | None) -> dict[str, float]:
    from dehazekit.metrics.noref import NOREF
    from dehazekit.metrics.psnr_ssim import psnr, ssim

    out = {}
    for name in names:
        if name == "fade":
            from dehazekit.metrics.fade import fade

            out[name] = fade(img, fade_params)
        elif name == "psnr":
            out[name] = psnr(img, ref)
        elif name == "ssim":
            out[name] = ssim(img, ref)
        else:
            out[name] = NOREF[name](img)
    return out


def resolve_model_path(model: Path | None) -> Path:
    from dehazekit.models import default_model_path

    return Path(model) if model is not None else default_model_path()


@torch.no_grad()
def dehaze_uint8(model: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> dehazed (H, W, 3) uint8 through forward_padded."""
    from dehazekit.backbones import forward_padded
    from dehazekit.data.images import to_uint8

    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    y = forward_padded(model, x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return to_uint8(y)


def evaluate(cfg: EvalConfig) -> EvalReport:
    from PIL import Image

    from dehazekit.data.images import list_images, read_rgb_uint8
    from dehazekit.metrics.fade import FadeParams
    from dehazekit.models import load_model

    files = list_images(cfg.hazy, "hazy image folder")
    pairs = _match_clear(files, cfg.clear)
    model_path = resolve_model_path(cfg.model)
    model = load_model(model_path)
    fade_params = FadeParams.load(cfg.fade_params) if "fade" in cfg.metrics else None
    report = EvalReport(model=str(model_path), metrics=list(cfg.metrics))
    if cfg.max_side:
        report.notes.append(
            f"images downscaled to max side {cfg.max_side} (Lanczos) before dehazing and scoring"
        )
    thumbs = []
    for path in files:
        hazy = read_rgb_uint8(path, cfg.max_side)
        ref = None
        if path in pairs:
            gt = Image.fromarray(read_rgb_uint8(pairs[path]))
            ref = np.asarray(
                gt.resize((hazy.shape[1], hazy.shape[0]), Image.Resampling.LANCZOS), dtype=np.uint8
            )
        out = dehaze_uint8(model, hazy)
        before = _score(hazy, cfg.metrics, fade_params, ref)
        after = _score(out, cfg.metrics, fade_params, ref)
        delta = {k: after[k] - before[k] for k in cfg.metrics}
        report.images.append(
            {
                "name": path.name,
                "size": [hazy.shape[1], hazy.shape[0]],
                "before": before,
                "after": after,
                "delta": delta,
            }
        )
        if len(thumbs) < cfg.sheet_rows:
            thumbs.append([hazy, out] + ([ref] if ref is not None else []))
        log.info("%s: %s", path.name, ", ".join(f"{k} {before[k]:.3f}->{after[k]:.3f}" for k in cfg.metrics))
    report.mean = {
        k: {s: float(np.mean([im[s][k] for im in report.images])) for s in ("before", "after", "delta")}
        for k in cfg.metrics
    }
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")
        atomic_write_bytes(Path(cfg.out) / "contact_sheet.png", contact_sheet(thumbs))
    return report


def contact_sheet(rows: list[list[np.ndarray]], height: int = 160) -> bytes:
    """PNG bytes: one row per image (hazy | dehazed | ground truth when present), 4 px gaps."""
    import io

    from PIL import Image

    rendered = []
    for row in rows:
        tiles = [
            Image.fromarray(t).resize((max(1, round(t.shape[1] * height / t.shape[0])), height)) for t in row
        ]
        rendered.append(tiles)
    gap = 4
    width = max(sum(t.width for t in r) + gap * (len(r) - 1) for r in rendered) if rendered else 1
    sheet = Image.new("RGB", (width, max(1, len(rendered) * (height + gap) - gap)), (255, 255, 255))
    for i, tiles in enumerate(rendered):
        x = 0
        for t in tiles:
            sheet.paste(t, (x, i * (height + gap)))
            x += t.width + gap
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def print_report(report: EvalReport, console: Any) -> None:
    """Rich table: per image 'before -> after (delta)' per metric, then the mean; green = improved."""
    from rich.table import Table

    from dehazekit.metrics.noref import BETTER

    table = Table(title=f"dehazekit eval ({Path(report.model).name})", show_lines=False)
    table.add_column("image", overflow="fold")
    for m in report.metrics:
        table.add_column(m, justify="right")

    def cell(k: str, b: float, a: float) -> str:
        good = (a - b) * BETTER.get(k, 1) > 0
        return f"{b:.3f} -> {a:.3f} [{'green' if good else 'red'}]({a - b:+.3f})[/]"

    for im in report.images:
        table.add_row(im["name"], *[cell(k, im["before"][k], im["after"][k]) for k in report.metrics])
    table.add_row(
        "[bold]mean[/]", *[cell(k, report.mean[k]["before"], report.mean[k]["after"]) for k in report.metrics]
    )
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
