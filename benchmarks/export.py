"""Export benchmark: per full-size backbone, export/verify time, ONNX sizes, torch vs onnxruntime latency.

Measures, in one process per backbone list (ratios come from the same run):
  export time (fp32 trace + folding, fp16 conversion), verify time (fp32 parity, two sizes),
  ONNX file sizes, and median latency of torch eager, onnxruntime fp32 and onnxruntime fp16 on CPU
  at one input size (default 720x1280), alternating the three runners each repeat.

    OMP_NUM_THREADS=2 python benchmarks/export.py --backbones gunet-t dea --size 360x640 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("benchmarks.export")
DEFAULT_BACKBONES = ["gunet-t", "dehazeformer-t", "dea", "convir-s", "msbdn"]


def _timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _latencies(runners: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call; runners alternate so load changes hit all of them alike."""
    for fn in runners.values():
        fn()  # warm-up: allocations, kernel selection
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            times[name].append(_timed(fn)[1])
    return {name: statistics.median(values) for name, values in times.items()}


def bench_backbone(name: str, size: tuple[int, int], repeats: int, threads: int, workdir: Path) -> dict:
    from dehazekit.backbones import create_backbone, get_spec, padded_size
    from dehazekit.exporters.onnx_export import export_onnx
    from dehazekit.exporters.verify import ort_session, verify

    spec = get_spec(name)
    h, w = (padded_size(s, spec.pad_multiple, spec.min_size) for s in size)
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    fp32, t_export = _timed(lambda: export_onnx(model, workdir / f"{name}.onnx"))
    fp16, t_export16 = _timed(lambda: export_onnx(model, workdir / f"{name}.fp16.onnx", fp16=True))
    report, t_verify = _timed(lambda: verify(model, fp32, threads=threads))
    report16 = verify(model, fp16, threads=threads)
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    xt = torch.from_numpy(x)
    s32, s16 = ort_session(fp32, threads), ort_session(fp16, threads)

    def eager() -> None:
        with torch.inference_mode():
            model(xt)

    lat = _latencies(
        {
            "torch_eager": eager,
            "ort_fp32": lambda: s32.run(None, {"hazy": x}),
            "ort_fp16": lambda: s16.run(None, {"hazy": x}),
        },
        repeats,
    )
    return {
        "backbone": name,
        "input": [1, 3, h, w],
        "params": sum(p.numel() for p in model.parameters()),
        "export_s": round(t_export, 2),
        "export_fp16_s": round(t_export16, 2),
        "verify_s": round(t_verify, 2),
        "parity_fp32": report.passed,
        "parity_fp16": report16.passed,
        "max_abs_fp32": max(c.max_abs for c in report.cases),
        "mean_abs_fp16": max(c.mean_abs for c in report16.cases),
        "onnx_mb": round(fp32.stat().st_size / 1e6, 2),
        "onnx_fp16_mb": round(fp16.stat().st_size / 1e6, 2),
        "latency_s": {k: round(v, 4) for k, v in lat.items()},
        "speedup_ort_fp32_vs_torch": round(lat["torch_eager"] / lat["ort_fp32"], 3),
        "speedup_ort_fp16_vs_torch": round(lat["torch_eager"] / lat["ort_fp16"], 3),
        "ratio_ort_fp16_vs_fp32": round(lat["ort_fp16"] / lat["ort_fp32"], 3),
    }


def _table(rows: list[dict]) -> str:
    head = (
        "| backbone | input | export s (fp32/fp16) | verify s | ONNX MB (fp32/fp16) | torch s | ORT fp32 s | "
        "ORT fp16 s | ORT32/torch speedup | fp16/fp32 time | parity fp32/fp16 |\n|" + "---|" * 11
    )
    lines = [head]
    for r in rows:
        lat = r["latency_s"]
        lines.append(
            f"| {r['backbone']} | {r['input'][2]}x{r['input'][3]} | {r['export_s']} / {r['export_fp16_s']} | "
            f"{r['verify_s']} | {r['onnx_mb']} / {r['onnx_fp16_mb']} | "
            f"{lat['torch_eager']} | {lat['ort_fp32']} | "
            f"{lat['ort_fp16']} | {r['speedup_ort_fp32_vs_torch']}x | {r['ratio_ort_fp16_vs_fp32']} | "
            f"{'pass' if r['parity_fp32'] else 'FAIL'} / {'pass' if r['parity_fp16'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES)
    parser.add_argument("--size", default="720x1280", help="HxW (rounded up to each backbone's pad multiple)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "export.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones:
            log.info("benchmarking %s at %s", name, args.size)
            rows.append(bench_backbone(name, size, args.repeats, args.threads, Path(tmp)))
            log.info("%s", rows[-1])
    from dehazekit.runtimes.io_utils import atomic_write_text

    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "size": args.size,
        "repeats": args.repeats,
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(_table(rows))


if __name__ == "__main__":
    main()
