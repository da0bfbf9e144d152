"""Markdown tables of benchmarks/ablation.py results: equal steps (the rows) and equal wall time (full
fine-tuning's PSNR read off its time-to-quality curve at each method's wall time).

    python benchmarks/ablation_report.py benchmarks/results/ablation_gpu_dense.json [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ORDER = ("none", "full", "all-lora", "even-K", "random-K", "dW-K", "oracle-K")


def full_psnr_at(curve: list[list[float]], wall: float, start_psnr: float) -> float | None:
    """Full fine-tuning's PSNR after ``wall`` seconds (linear between curve points; None past its end)."""
    if not curve or wall > curve[-1][0]:
        return None
    walls = [0.0] + [p[0] for p in curve]
    psnrs = [start_psnr] + [p[1] for p in curve]
    return float(np.interp(wall, walls, psnrs))


def table(result: dict) -> str:
    rows, curves = result["rows"], result.get("curves", {})
    none = rows["none"]["psnr"]
    names = [n for n in ORDER if n in rows] + sorted(n for n in rows if n.startswith("bilalora:"))
    out = [
        "| method | PSNR | dPSNR | SSIM | trained params | wall (s) | full FT at equal wall"
        " | Spearman to oracle | top-K overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = rows[name]
        spread = f" ({r['psnr_min']:.2f}-{r['psnr_max']:.2f})" if "psnr_min" in r else ""
        at = full_psnr_at(curves.get("full", []), r["wall_s"], none) if name not in ("none", "full") else None
        out.append(
            f"| {name} | {r['psnr']:.2f}{spread} | {r['psnr'] - none:+.2f} | {r['ssim']:.4f}"
            f" | {r['trained_params']:,} | {r['wall_s']:.1f} | {'-' if at is None else f'{at:.2f}'}"
            f" | {r.get('spearman_to_oracle', '-')} | {r.get('top_k_overlap_with_oracle', '-')} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+")
    args = ap.parse_args()
    for path in args.results:
        result = json.loads(path.read_text())
        print(f"### {path.name}\n\n    {result['command']}\n\n{table(result)}\n")


if __name__ == "__main__":
    main()
