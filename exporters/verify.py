"""Parity reports: an exported ONNX model against its PyTorch reference, on onnxruntime CPU.

Errors are measured on outputs divided by ``scale = max(1, max|reference|)``: dehazed images live in
[0, 1] so the tolerances below apply as written, while randomly initialised test networks (outputs
far outside [0, 1]) are judged relative to their own range instead of failing on magnitude alone.
Note: onnxruntime CPU runs fp16 nodes that lack a CPU kernel in fp32 (its InsertCast pass), so a CPU
fp16 report bounds weight rounding and graph correctness; fp16 arithmetic is checked on TensorRT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dehazekit.runtimes.errors import ConfigError, InputError, ParityError
from dehazekit.runtimes.io_utils import atomic_write_text
from dehazekit.runtimes.media import IMAGE_SUFFIXES, is_image, read_image
from torch import nn

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Tolerance:
    """Pass/fail thresholds on scale-normalised absolute error; None disables a check."""

    max_abs: float | None = None
    mean_abs: float | None = None
    p999_abs: float | None = None
    min_psnr_db: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_abs", "mean_abs", "p999_abs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError.build(f"Tolerance.{name} must be > 0", got=value)

    @classmethod
    def for_precision(cls, precision: str) -> Tolerance:
        if precision == "fp32":
            return cls(max_abs=1e-4)
        if precision == "fp16":
            return cls(mean_abs=0.5 / 255, p999_abs=4 / 255, min_psnr_db=45.0)
        raise ConfigError.build("no parity tolerance for precision", got=precision, expected="fp32 or fp16")


@dataclass
class CaseResult:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    p999_abs: float
    psnr_db: float
    nonfinite: int
    scale: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> CaseResult:
    """Error statistics of ``candidate`` against ``reference`` and the tolerance checks they fail."""
    if reference.shape != candidate.shape:
        return CaseResult(
            name,
            tuple(candidate.shape),
            math.inf,
            math.inf,
            math.inf,
            -math.inf,
            0,
            1.0,
            [f"shape {tuple(candidate.shape)} != reference {tuple(reference.shape)}"],
        )
    nonfinite = int((~np.isfinite(candidate)).sum())
    ref = reference.astype(np.float64)
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    diff = np.abs(np.nan_to_num(candidate.astype(np.float64), nan=np.inf) - ref) / scale
    finite = diff[np.isfinite(diff)]
    mse = float(np.mean(np.square(diff))) if nonfinite == 0 else math.inf
    psnr = math.inf if mse == 0 else (10 * math.log10(1.0 / mse) if math.isfinite(mse) else -math.inf)
    res = CaseResult(
        name,
        tuple(candidate.shape),
        float(diff.max()),
        float(diff.mean()),
        float(np.quantile(finite, 0.999)) if finite.size else math.inf,
        psnr,
        nonfinite,
        scale,
    )
    if nonfinite:
        res.failures.append(f"{nonfinite} NaN/Inf values")
    checks = (
        ("max", res.max_abs, tol.max_abs),
        ("mean", res.mean_abs, tol.mean_abs),
        ("p99.9", res.p999_abs, tol.p999_abs),
    )
    res.failures += [
        f"{label} {value:.3g} > {limit:.3g}"
        for label, value, limit in checks
        if limit is not None and not value <= limit
    ]
    if tol.min_psnr_db is not None and not psnr >= tol.min_psnr_db:
        res.failures.append(f"PSNR {psnr:.1f} dB < {tol.min_psnr_db:g} dB")
    return res


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


@dataclass
class ParityReport:
    onnx_path: str
    backbone: str
    precision: str
    tolerance: Tolerance
    cases: list[CaseResult]
    provider: str = "CPUExecutionProvider"

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        cases = []
        for case in self.cases:
            row = {k: _json_number(v) for k, v in asdict(case).items()}
            row["shape"], row["passed"] = list(case.shape), case.passed
            cases.append(row)
        return {
            "onnx": self.onnx_path,
            "backbone": self.backbone,
            "precision": self.precision,
            "provider": self.provider,
            "tolerance": asdict(self.tolerance),
            "passed": self.passed,
            "error_scale": "abs error / max(1, max|reference|)",
            "cases": cases,
        }

    def save(self, path: str | Path) -> Path:
        import json

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"parity {self.backbone} {self.precision} ({'PASS' if self.passed else 'FAIL'})")
        table.add_column("input", overflow="fold", min_width=16)
        for col in ("shape", "max", "mean", "p99.9", "PSNR dB", "NaN/Inf"):
            table.add_column(col, no_wrap=True, justify="right")
        table.add_column("result", overflow="fold")
        for c in self.cases:
            table.add_row(
                c.name,
                "x".join(map(str, c.shape)),
                f"{c.max_abs:.2e}",
                f"{c.mean_abs:.2e}",
                f"{c.p999_abs:.2e}",
                f"{c.psnr_db:.1f}",
                str(c.nonfinite),
                "ok" if c.passed else "; ".join(c.failures),
            )
        return table

    def raise_if_failed(self) -> None:
        if not self.passed:
            worst = [f"{c.name}: {'; '.join(c.failures)}" for c in self.cases if not c.passed]
            raise ParityError.build(
                f"{self.onnx_path} does not match its PyTorch reference ({self.precision})",
                got=worst[:3],
                expected=asdict(self.tolerance),
                fix="inspect the parity report; pass --force to keep the artifact anyway",
            )


# --- inputs ----------------------------------------------------------------------------------
def default_sizes(pad_multiple: int, min_size: int) -> list[tuple[int, int]]:
    """Two valid sizes, one square and one not, both different from the export trace size."""
    from dehazekit.backbones import padded_size

    square = padded_size(48, pad_multiple, min_size)
    tall = padded_size(square + 2 * pad_multiple, pad_multiple, min_size)
    return [(square, square), (tall, padded_size(tall + 3 * pad_multiple, pad_multiple, min_size))]


def _load_rgb(path: Path) -> np.ndarray:
    return read_image(path).astype(np.float32) / 255.0


def image_inputs(
    images_dir: str | Path, sizes: Sequence[tuple[int, int]], limit: int = 2
) -> dict[str, np.ndarray]:
    """Centre crops (never resizes) of up to ``limit`` photos at each size: (1, 3, h, w) float32 [0, 1]."""
    folder = Path(images_dir)
    files = (
        sorted(p for p in folder.iterdir() if is_image(p) and not p.name.startswith(".")) if folder.is_dir() else []
    )
    if not files:
        raise InputError.build(
            "no images to verify with", got=str(folder), expected=f"files {IMAGE_SUFFIXES}"
        )
    out: dict[str, np.ndarray] = {}
    for path in files[:limit]:
        rgb = _load_rgb(path)
        for h, w in sizes:
            if rgb.shape[0] < h or rgb.shape[1] < w:
                log.info("verify: %s smaller than %dx%d, skipped at that size", path.name, h, w)
                continue
            top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
            crop = rgb[top : top + h, left : left + w].transpose(2, 0, 1)[None]
            out[f"{path.stem}@{h}x{w}"] = np.ascontiguousarray(crop)
    return out


def random_inputs(sizes: Iterable[tuple[int, int]], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"random@{h}x{w}": rng.random((batch, 3, h, w), dtype=np.float32) for h, w in sizes}


# --- verify ----------------------------------------------------------------------------------
def ort_session(onnx_path: str | Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # CPU "optimized model" chatter is noise in a report
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def verify(
    reference: nn.Module,
    onnx_path: str | Path,
    inputs: dict[str, Any] | Sequence[Any] | None = None,
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    images_dir: str | Path | None = None,
    batch: int = 1,
    tolerance: Tolerance | None = None,
    report_path: str | Path | None = None,
    threads: int | None = None,
) -> ParityReport:
    """Compare ``reference`` (PyTorch) with ``onnx_path`` (onnxruntime CPU) on each input.

    Inputs: the given arrays/tensors (B, 3, H, W) float32 [0, 1], else random ones at ``sizes``
    (default: two valid sizes incl. a non-square one) plus centre crops of photos in ``images_dir``.
    """
    from dehazekit.exporters.onnx_export import INPUT_NAME, read_meta

    meta = read_meta(onnx_path)
    tol = tolerance or Tolerance.for_precision(meta.precision)
    if inputs is None:
        sizes = list(sizes or default_sizes(meta.pad_multiple, meta.min_size))
        cases = random_inputs(sizes, batch=batch)
        if images_dir is not None:
            cases.update(image_inputs(images_dir, sizes))
    elif isinstance(inputs, dict):
        cases = dict(inputs)
    else:
        cases = {f"input{i}": x for i, x in enumerate(inputs)}
    session = ort_session(onnx_path, threads)
    reference = reference.eval()
    results = []
    for name, x in cases.items():
        array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
        with torch.no_grad():
            ref = reference(torch.from_numpy(array))
        got = session.run(None, {INPUT_NAME: array})[0]
        results.append(compare(name, ref.numpy(), got, tol))
    report = ParityReport(str(onnx_path), meta.backbone, meta.precision, tol, results)
    if report_path is not None:
        report.save(report_path)
    log.info("parity %s %s: %s", meta.backbone, meta.precision, "pass" if report.passed else "FAIL")
    return report
