"""Issue 17's done-when, counted per seed and strength from the strength seeds' results.

A violation is one missed item among "O-HAZE 27 gains", "O-HAZE 35 gains", ">= 3 of 4 crop families
gain (mean over their two folds)", ">= 3 of 4 synthetic domains gain", "the mean luma over all rows is
within 10% of GT's" (when the rows carry their means), plus one per done-when run
(O-HAZE leave-one-out, the 8 crop folds, the 4 synthetic domains) that loses more than 0.1 dB.
The second count reads "O-HAZE 27/35 (leave-one-out)" as the crop families are read: one item, the
mean over its two folds (adapt on 27, score 35; adapt on 35, score 27) gains.

    python benchmarks/adapt_gt_done_when.py --strengths 0.5 0.75 --out benchmarks/results/adapt_gt_done_when

``--seeds`` restricts the count to some seeds (a rule registered before its fresh seeds ran), and the
output names the strength the bound-first rule picks (``pick_bound_first``).
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
    luma_close,
    seed_of,
    strength_column,
    strength_seed_files,
    write_replay,
)

OHAZE_FOLDS = ("ohaze:eval27", "ohaze:eval35")


def violations(rows: list[dict], strength: float, ohaze_as_family: bool = False) -> list[str]:
    """Each missed done-when item of one seed at one strength, as a short reason. ``ohaze_as_family``:
    O-HAZE's two leave-one-out folds count as one item (their mean gains), like a crop family's."""
    delta = {r["task"]: r["delta_psnr"][strength_column(strength)] for r in rows}
    if ohaze_as_family:
        folds = [delta[t] for t in OHAZE_FOLDS]
        missed = ["O-HAZE 27/35 leave-one-out does not gain"] if sum(folds) / len(folds) <= 0 else []
    else:
        missed = [f"{t} does not gain" for t in OHAZE_FOLDS if delta[t] <= 0]
    families: dict[str, list[float]] = defaultdict(list)
    for task, d in delta.items():
        if task.startswith("crops:"):
            families[task.split(":")[1]].append(d)
    if sum(sum(v) / len(v) > 0 for v in families.values()) < 3:
        missed.append("fewer than 3 crop families gain")
    if sum(d > 0 for t, d in delta.items() if t.startswith("synth:")) < 3:
        missed.append("fewer than 3 synthetic domains gain")
    if all("means" in r for r in rows) and not _luma_close(rows, strength_column(strength)):
        missed.append("mean luma not within 10% of GT's")
    return missed + [f"{t} loses {d:+.2f} dB" for t, d in losing(rows, strength)]


def _luma_close(rows: list[dict], column: str) -> bool:
    luma = sum(r["means"][column]["luma"] for r in rows) / len(rows)
    return luma_close(luma, sum(r["means"]["none"]["gt_luma"] for r in rows) / len(rows))


def losing(rows: list[dict], strength: float) -> list[tuple[str, float]]:
    """Done-when runs of one seed that lose more than the bound at ``strength``, with their change."""
    column = strength_column(strength)
    return [
        (r["task"], r["delta_psnr"][column])
        for r in rows
        if not r["task"].startswith(NOT_DONE_WHEN) and r["delta_psnr"][column] < -BOUND_DB
    ]


def losses(rows: list[dict], strength: float) -> int:
    return len(losing(rows, strength))


def pick_bound_first(totals: dict[str, dict[str, float]]) -> str:
    """The strength whose runs lose more than the bound least often; ties go to fewer done-when
    violations, then to the higher mean dPSNR over all rows (benchmarks/README.md, "Seeds 15-22")."""
    return min(totals, key=lambda s: (totals[s]["losses"], totals[s]["violations"], -totals[s]["mean_dpsnr"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.75])
    ap.add_argument("--seeds", type=int, nargs="+", help="count only these seeds (default: every seed)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    every_seed = strength_seed_files()
    paths = every_seed
    if args.seeds:
        paths = [p for p in paths if seed_of(p) in args.seeds]
        if len(paths) != len(set(args.seeds)):
            raise SystemExit(f"--seeds {args.seeds}: only {len(paths)} result files exist; run the others")
    seeds, summaries = {}, {}
    for path in paths:
        rows = json.loads(path.read_text())["summary"]
        seed = str(seed_of(path))
        summaries[seed] = rows
        seeds[seed] = {
            str(s): violations(rows, s) for s in args.strengths if strength_column(s) in rows[0]["delta_psnr"]
        }
    lines = ["| seed | " + " | ".join(f"strength {s:g}" for s in args.strengths) + " |"]
    lines.append("|---" * (len(args.strengths) + 1) + "|")
    for seed, by_strength in seeds.items():
        cells = [", ".join(by_strength.get(str(s), ["not scored"])) or "none" for s in args.strengths]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    totals = {str(s): _totals(summaries, seeds, s) for s in args.strengths}
    header = (
        "| strength | seeds scored | done-when violations | the same, O-HAZE as one leave-one-out family "
        "| runs losing > 0.1 dB | mean dPSNR |"
    )
    text = "\n".join(lines) + f"\n\n{header}\n"
    text += "|---|---|---|---|---|---|\n" + "".join(
        f"| {s} | {t['seeds']} | {t['violations']} | {t['violations_loo']} | {t['losses']} "
        f"| {t['mean_dpsnr']:+.3f} |\n"
        for s, t in totals.items()
    )
    scored = {s: t for s, t in totals.items() if t["seeds"] == len(seeds)}
    pick = pick_bound_first(scored) if scored else None
    text += f"\nbound-first pick among the strengths scored on every seed: {pick}\n"
    write_replay(args.out, {"seeds": seeds, "totals": totals, "bound_first_pick": pick}, text, every_seed)
    print(text)


def _totals(summaries: dict[str, list[dict]], seeds: dict[str, dict], strength: float) -> dict:
    scored = [seed for seed in seeds if str(strength) in seeds[seed]]
    column = strength_column(strength)
    deltas = [r["delta_psnr"][column] for seed in scored for r in summaries[seed]]
    return {
        "seeds": len(scored),
        "violations": sum(len(seeds[seed][str(strength)]) for seed in scored),
        "violations_loo": sum(
            len(violations(summaries[seed], strength, ohaze_as_family=True)) for seed in scored
        ),
        "losses": sum(losses(summaries[seed], strength) for seed in scored),
        "mean_dpsnr": sum(deltas) / len(deltas) if deltas else float("nan"),
    }


if __name__ == "__main__":
    main()
