"""Would a per-frame airlight gate help? Replayed on the strength seeds from their per-image scores.

`offline` teaches the adapter the target's (dim, tinted) airlight. A frame whose own airlight is inside
the base model's training range (grey 0.75-1.0) may not need the adapter at all: BeDDE's two bright
days lose because one LoRA, made for the three dim days, is applied to them too. The gate: use the
adapted model on an image whose estimated airlight (grey level, `objectives.rehaze.estimate_airlight`
on the hazy input) is below TAU, the base model otherwise. GT-free; per image; no new training: every
`results/adapt_gt_strength_seed*.json` holds per-image scores of `none` and of the shipped adapter.

    python benchmarks/adapt_gt_airlight_gate.py --out benchmarks/results/adapt_gt_airlight_gate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_gt_seeds import NOT_DONE_WHEN, luma_close, seed_of, strength_seed_files, write_replay  # noqa: E402


def eval_airlights() -> dict[tuple[str, str], float]:
    """(task, image) -> grey level of the hazy evaluation image's estimated airlight."""
    import torch
    from adapt_gt import MODES, build_tasks

    from dehazekit.objectives.rehaze import estimate_airlight

    out = {}
    for task in build_tasks(MODES["default"], None):
        for name, hazy, _ in task.evals:
            x = torch.from_numpy(np.ascontiguousarray(hazy, dtype=np.float32)).permute(2, 0, 1)[None]
            out[task.name, name] = float(estimate_airlight(x).mean())
    return out


def gated_row(record: dict, column: str, airlight: dict, tau: float | None) -> dict:
    """dPSNR and luma of one task when the adapter only runs on images with airlight < tau."""
    none = {x["image"]: x for x in record["methods"]["none"]}
    adapted = {x["image"]: x for x in record["methods"][column]}
    picked = [adapted[i] if tau is None or airlight[record["task"], i] < tau else none[i] for i in none]
    luma, gt = np.mean([p["luma"] for p in picked]), np.mean([p["gt_luma"] for p in picked])
    return {
        "dpsnr": float(np.mean([p["psnr"] for p in picked]) - np.mean([x["psnr"] for x in none.values()])),
        "luma_within": luma_close(luma, gt),
    }


def seed_summary(records: list[dict], column: str, airlight: dict, tau: float | None) -> dict:
    rows = {r["task"]: gated_row(r, column, airlight, tau) for r in records}
    done_when = [v["dpsnr"] for k, v in rows.items() if not k.startswith(NOT_DONE_WHEN)]
    return {
        "mean_dpsnr": float(np.mean([v["dpsnr"] for v in rows.values()])),
        "luma_within": sum(v["luma_within"] for v in rows.values()),
        "worst_done_when": min(done_when),
        "bedde": next((v["dpsnr"] for k, v in rows.items() if k.startswith("bedde")), None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taus", type=float, nargs="*", default=[0.75, 0.8, 0.85])
    ap.add_argument("--column", default="lora:offline@0.75")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    airlight = eval_airlights()
    paths = strength_seed_files()
    seeds = {}
    for path in paths:
        records = json.loads(path.read_text())["records"]
        seeds[str(seed_of(path))] = {
            str(tau): seed_summary(records, args.column, airlight, tau) for tau in [None, *args.taus]
        }
    lines = ["| seed | " + " | ".join(f"tau {t}" for t in seeds[next(iter(seeds))]) + " |"]
    lines.append("|---" * (len(seeds[next(iter(seeds))]) + 1) + "|")
    for seed, by_tau in seeds.items():
        cells = [
            f"{s['mean_dpsnr']:+.3f}, {s['luma_within']}, {s['worst_done_when']:+.2f}, {s['bedde']:+.2f}"
            for s in by_tau.values()
        ]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    head = f"cells ({args.column}; tau None = no gate): mean dPSNR over 16 rows, rows within 10% of GT luma, "
    text = head + "worst done-when row, BeDDE\n\n" + "\n".join(lines) + "\n"
    write_replay(args.out, seeds, text, paths)
    print(text)


if __name__ == "__main__":
    main()
