"""Issue 17's done-when, counted per seed and strength from the strength seeds' results.

A violation is one missed item among "O-HAZE 27 gains", "O-HAZE 35 gains", ">= 3 of 4 crop families
gain (mean over their two folds)", ">= 3 of 4 synthetic domains gain", plus one per done-when run
(O-HAZE leave-one-out, the 8 crop folds, the 4 synthetic domains) that loses more than 0.1 dB.

    python benchmarks/adapt_gt_done_when.py --strengths 0.5 0.75 --out benchmarks/results/adapt_gt_done_when
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_gt_seeds import (  # noqa: E402
    BOUND_DB,
    NOT_DONE_WHEN,
    strength_column,
    strength_seed_files,
    write_replay,
)


def violations(rows: list[dict], strength: float) -> list[str]:
    """Each missed done-when item of one seed at one strength, as a short reason."""
    delta = {r["task"]: r["delta_psnr"][strength_column(strength)] for r in rows}
    missed = [f"{t} does not gain" for t in ("ohaze:eval27", "ohaze:eval35") if delta[t] <= 0]
    families: dict[str, list[float]] = defaultdict(list)
    for task, d in delta.items():
        if task.startswith("crops:"):
            families[task.split(":")[1]].append(d)
    if sum(sum(v) / len(v) > 0 for v in families.values()) < 3:
        missed.append("fewer than 3 crop families gain")
    if sum(d > 0 for t, d in delta.items() if t.startswith("synth:")) < 3:
        missed.append("fewer than 3 synthetic domains gain")
    missed += [
        f"{t} loses {d:+.2f} dB"
        for t, d in delta.items()
        if not t.startswith(NOT_DONE_WHEN) and d < -BOUND_DB
    ]
    return missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.75])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    paths = strength_seed_files()
    seeds = {}
    for path in paths:
        rows = json.loads(path.read_text())["summary"]
        seeds[path.stem.rsplit("seed", 1)[1]] = {
            str(s): violations(rows, s) for s in args.strengths if strength_column(s) in rows[0]["delta_psnr"]
        }
    lines = ["| seed | " + " | ".join(f"strength {s:g}" for s in args.strengths) + " |"]
    lines.append("|---" * (len(args.strengths) + 1) + "|")
    for seed, by_strength in seeds.items():
        cells = [", ".join(by_strength.get(str(s), ["not scored"])) or "none" for s in args.strengths]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    totals = {str(s): sum(len(v.get(str(s), [])) for v in seeds.values()) for s in args.strengths}
    text = "\n".join(lines) + f"\n\nviolations in all: {totals}\n"
    write_replay(args.out, {"seeds": seeds, "totals": totals}, text, paths)
    print(text)


if __name__ == "__main__":
    main()
