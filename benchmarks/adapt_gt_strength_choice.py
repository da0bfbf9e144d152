"""Could a per-run strength fix per-row luma? Replayed on the strength seeds, no new training.

Every `results/adapt_gt_strength_seed*.json` scores the shipped adapter at several strengths. Per
seed, three ways to pick one strength per row are compared over the 16 rows (mean dPSNR, rows whose
mean luma is within 10% of GT's, worst done-when row):

    fixed   the product's 0.75
    pull    from the `airswap` label's brightness pull on the adaptation images (GT-free;
            `adapt_gt_label_signal.py`): clip((pull - 1) / 0.2, 0.5, 1), rounded down to a scored strength
    oracle  the strength with the best PSNR against GT (an upper bound, not a method)

plus how many rows any scored strength puts within 10% of GT's luma.

    python benchmarks/adapt_gt_strength_choice.py --out benchmarks/results/adapt_gt_strength_choice
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_gt_seeds import (  # noqa: E402
    NOT_DONE_WHEN,
    RESULTS,
    luma_close,
    seed_of,
    strength_column,
    strength_seed_files,
    write_replay,
)


def _within(row: dict, column: str) -> bool:
    return luma_close(row["means"][column]["luma"], row["means"]["none"]["gt_luma"])


def seed_summary(rows: list[dict], pull: dict[str, float]) -> dict:
    strengths = sorted({1.0} | {float(k.split("@")[1]) for k in rows[0]["delta_psnr"] if "@" in k})
    picks = {
        "fixed": lambda r: 0.75,
        "pull": lambda r: max(
            s for s in strengths if s <= max(0.5, min(1.0, (pull[r["task"]] - 1) / 0.2)) + 1e-9
        ),
        "oracle": lambda r: max(strengths, key=lambda s: r["delta_psnr"][strength_column(s)]),
    }
    done_when = [r for r in rows if not r["task"].startswith(NOT_DONE_WHEN)]
    out = {"strengths": strengths}
    for name, pick in picks.items():
        chosen = {r["task"]: strength_column(pick(r)) for r in rows}
        out[name] = {
            "mean_dpsnr": sum(r["delta_psnr"][chosen[r["task"]]] for r in rows) / len(rows),
            "luma_within": sum(_within(r, chosen[r["task"]]) for r in rows),
            "worst_done_when": min(r["delta_psnr"][chosen[r["task"]]] for r in done_when),
        }
    out["luma_within_any"] = sum(any(_within(r, strength_column(s)) for s in strengths) for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    signal = json.loads((RESULTS / "adapt_gt_label_signal.json").read_text())["rows"]
    pull = {r["task"]: r["airswap_pull"] for r in signal}
    paths = strength_seed_files()
    seeds = {}
    for path in paths:
        seeds[str(seed_of(path))] = seed_summary(json.loads(path.read_text())["summary"], pull)
    lines = [
        "| seed | fixed 0.75 | pull-chosen | GT oracle | rows any strength puts within 10% |",
        "|---|---|---|---|---|",
    ]
    for seed, s in seeds.items():
        cells = [
            f"{s[k]['mean_dpsnr']:+.3f}, {s[k]['luma_within']}, {s[k]['worst_done_when']:+.2f}"
            for k in ("fixed", "pull", "oracle")
        ]
        lines.append(f"| {seed} | {' | '.join(cells)} | {s['luma_within_any']} |")
    text = (
        "cells: mean dPSNR over 16 rows, rows within 10% of GT luma, worst done-when row\n\n"
        + "\n".join(lines)
        + "\n"
    )
    write_replay(args.out, seeds, text, [*paths, RESULTS / "adapt_gt_label_signal.json"])
    print(text)


if __name__ == "__main__":
    main()
