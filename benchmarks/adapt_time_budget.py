"""How well does `--time-budget` hold? Estimated vs measured adaptation time, one run per budget.

Each run: `dehazekit.adapt(..., time_budget=B)` on the bundled gunet-t model and real hazy photos
(dcp objective, so no CLIP download). The probe (a few search and fine-tune steps on a copy) sets
the step counts; we record the probe's seconds per step, the planned steps, and the measured wall
time of the whole call (loading, probe, both stages, merge, report) against the budget.

    OMP_NUM_THREADS=1 python benchmarks/adapt_time_budget.py --budgets 60 120 --size 128
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent.parent / "shared" / "data" / "real_hazy" / "fattal_bilalora"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_once(images: Path, budget_s: float, size: int, batch: int) -> dict:
    import os

    import dehazekit

    capture = _Capture()
    logging.getLogger("dehazekit.adapt.budget").addHandler(capture)
    logging.getLogger("dehazekit.adapt.budget").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = dehazekit.adapt(
            str(images),
            "gunet",
            weights="synthetic",
            objective="dcp",
            size=size,
            batch_size=batch,
            time_budget=budget_s,
            checkpoint_every=0,
            out=out,
            progress=lambda event: None,
        )
        wall = time.perf_counter() - start
    estimate = next(line for line in capture.lines if line.startswith("estimated adaptation time"))
    planned = {k: int(v) for k, v in re.findall(r"(search|finetune) (\d+) steps", estimate)}
    per_step = {k: float(v) for k, v in re.findall(r"(search|finetune) \d+ steps x ([\d.]+) s", estimate)}
    steps = {k: len(result.losses[k]) for k in planned}  # the fine-tune may have been re-fitted
    return {
        "budget_s": budget_s,
        "wall_s": round(wall, 1),
        "wall_over_budget": round(wall / budget_s, 3),
        "planned_steps": planned,
        "steps": steps,
        "probe_s_per_step": per_step,
        "measured_s_per_step": {k: round(result.timings[k] / max(steps[k], 1), 3) for k in steps},
        "timings_s": {k: round(v, 1) for k, v in result.timings.items()},
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--budgets", type=float, nargs="+", default=[60.0, 120.0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "adapt_time_budget.json"
    )
    args = parser.parse_args()
    runs = [run_once(args.images, b, args.size, args.batch_size) for b in args.budgets]
    report = {
        "images": str(args.images),
        "backbone": "gunet-t (bundled)",
        "objective": "dcp",
        "size": args.size,
        "batch_size": args.batch_size,
        "runs": runs,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in runs:
        print(
            f"budget {r['budget_s']:.0f} s -> wall {r['wall_s']:.1f} s ({r['wall_over_budget']:.2f}x), "
            f"steps {r['steps']}, probe {r['probe_s_per_step']} vs measured {r['measured_s_per_step']}"
        )


if __name__ == "__main__":
    main()
