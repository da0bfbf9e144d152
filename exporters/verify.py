"""Parity reports: an exported ONNX model against its PyTorch reference, on onnxruntime CPU.

The runs go through Polygraphy's Comparator (dehazekit.exporters.comparison); the judgement is ours.

Errors are measured on outputs divided by ``scale = max(1, max|reference|)``: dehazed images live in
[0, 1] so the tolerances below apply as written, while randomly initialised test networks (outputs
far outside [0, 1]) are judged relative to their own range instead of failing on magnitude alone.
Note: onnxruntime CPU runs fp16 nodes that lack a CPU kernel in fp32 (its InsertCast pass), so a CPU
fp16 report bounds weight rounding and graph correctness; fp16 arithmetic is checked on TensorRT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
import torch
from torch import nn

from dehazekit.exporters.parity_inputs import (  # noqa: F401  (re-exported: the verify API)
    PARITY_LONG_SIDE,
    default_sizes,
    image_inputs,
    parity_inputs,
    random_inputs,
    realistic_size,
)
from dehazekit.runtimes.errors import ConfigError, ParityError
from dehazekit.runtimes.io_utils import atomic_write_text
from dehazekit.runtimes.meta import ModelMeta

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

    def __bool__(self) -> bool:  # Polygraphy's Comparator reads a compare result's truth value as "matched"
        return self.passed


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
        """Rich table within 80 columns: case names carry the size (shapes and NaN counts: the JSON)."""
        from rich.table import Table

        table = Table(title=f"parity {self.backbone} {self.precision} ({'PASS' if self.passed else 'FAIL'})")
        table.add_column("input (HxW)", overflow="fold", min_width=12)
        for col in ("max", "mean", "p99.9", "PSNR dB"):
            table.add_column(col, no_wrap=True, justify="right")
        table.add_column("result", overflow="fold")
        for c in self.cases:
            table.add_row(
                c.name,
                f"{c.max_abs:.1e}",
                f"{c.mean_abs:.1e}",
                f"{c.p999_abs:.1e}",
                f"{c.psnr_db:.1f}",
                "ok" if c.passed else "; ".join(c.failures),
            )
        return table

    def raise_if_failed(self) -> None:
        if not self.passed:
            worst = [f"{c.name}: {'; '.join(c.failures)}" for c in self.cases if not c.passed]
            raise ParityError.build(
                f"{self.onnx_path} does not match its reference ({self.precision}, {self.provider})",
                got=worst[:3],
                expected=asdict(self.tolerance),
                fix="inspect the parity report; pass --force to keep the artifact anyway",
            )


# --- verify ----------------------------------------------------------------------------------
def ort_session(onnx_path: str | Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # CPU "optimized model" chatter is noise in a report
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


OnnxModel = Union[str, Path, bytes, "onnx.ModelProto"]


def _onnx_bytes(model: OnnxModel) -> tuple[bytes, str]:
    """(serialised model, name for the report) from a path, bytes or an in-memory proto."""
    if isinstance(model, bytes):
        return model, "<in-memory ONNX>"
    if isinstance(model, (str, Path)):
        return Path(model).read_bytes(), str(model)
    return model.SerializeToString(), "<in-memory ONNX>"


def verify(
    reference: nn.Module,
    onnx_model: OnnxModel,
    inputs: dict[str, Any] | Sequence[Any] | None = None,
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    images_dir: str | Path | None = None,
    batch: int = 1,
    tolerance: Tolerance | None = None,
    report_path: str | Path | None = None,
    threads: int | None = None,
    long_side: int = PARITY_LONG_SIDE,
    on_case: Callable[[int, int], None] | None = None,
) -> ParityReport:
    """Compare ``reference`` (PyTorch, CPU) with ``onnx_model`` (onnxruntime CPU) through Polygraphy.

    ``onnx_model``: a path, serialised bytes or an ``onnx.ModelProto`` (nothing is re-read from disk).
    Inputs: the given arrays/tensors (B, 3, H, W) float32 [0, 1], else ``parity_inputs`` (two small
    sizes incl. a non-square one, one realistic ``long_side`` size, photo crops from ``images_dir``).
    ``on_case(i, n)`` reports progress.
    """
    from dehazekit.exporters.comparison import TorchRunner, onnxrt_runner, run_comparison
    from dehazekit.exporters.onnx_export import read_meta

    data, label = _onnx_bytes(onnx_model)
    meta = read_meta(onnx_model if not isinstance(onnx_model, bytes) else onnx.load_from_string(data))
    tol = tolerance or Tolerance.for_precision(meta.precision)
    if inputs is None:
        cases = parity_inputs(meta, sizes=sizes, images_dir=images_dir, batch=batch, long_side=long_side)
    elif isinstance(inputs, dict):
        cases = dict(inputs)
    else:
        cases = {f"input{i}": x for i, x in enumerate(inputs)}
    names = list(cases)
    feeds = [_as_array(x) for x in cases.values()]
    judged = run_comparison(
        [TorchRunner(reference), onnxrt_runner(data, threads)],
        feeds,
        lambda ref, got: compare("", ref, got, tol),
        on_feed=(lambda i: on_case(i, len(feeds))) if on_case else None,
    )
    for name, case in zip(names, judged):
        case.name = name
    report = ParityReport(label, meta.backbone, meta.precision, tol, judged)
    if report_path is not None:
        report.save(report_path)
    log.info("parity %s %s: %s", meta.backbone, meta.precision, "pass" if report.passed else "FAIL")
    return report


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float32, copy=False)
    return np.asarray(x, dtype=np.float32)


def verify_engine(
    engine: str | Path,
    onnx_model: OnnxModel,
    meta: ModelMeta,
    profile: Any,
    *,
    long_side: int = PARITY_LONG_SIDE,
    tolerance: Tolerance | None = None,
) -> ParityReport:
    """TensorRT engine vs onnxruntime CPU on the same inputs (Polygraphy TrtRunner vs OnnxrtRunner).

    Inputs lie inside the engine's shape ``profile``: its min H/W and the realistic size clamped into
    it. fp32 engines may pick TF32-like tactics, so both precisions are judged with the fp16 limits.
    """
    from dehazekit.exporters.comparison import onnxrt_runner, run_comparison, trt_runner

    data, _ = _onnx_bytes(onnx_model)
    lo, hi = profile.min[2:], profile.max[2:]
    sizes = [tuple(lo)]
    if long_side:
        h, w = realistic_size(long_side, meta.pad_multiple, meta.min_size)
        clamped = (min(max(h, lo[0]), hi[0]), min(max(w, lo[1]), hi[1]))
        sizes += [clamped] if clamped not in sizes else []
    cases = random_inputs(sizes, batch=profile.min[0])
    tol = tolerance or Tolerance.for_precision("fp16")
    judged = run_comparison(
        [onnxrt_runner(data), trt_runner(Path(engine).read_bytes())],
        list(cases.values()),
        lambda ref, got: compare("", ref, got, tol),
    )
    for name, case in zip(cases, judged):
        case.name = name
    report = ParityReport(str(engine), meta.backbone, meta.precision, tol, judged, provider="TensorRT")
    log.info("engine parity %s: %s", engine, "pass" if report.passed else "FAIL")
    return report
