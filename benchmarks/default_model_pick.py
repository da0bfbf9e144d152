"""The adoption rule for a new bundled default model, fixed before the candidates were trained.

A candidate replaces the bundled model only if, on `tools/eval_default_model.py`'s sets (same data,
same run): mean PSNR is not lower on O-HAZE 27+35, on the 42 figure crops (mean over families) and on
the synthetic validation presets (mean over presets); mean luma is closer to GT on O-HAZE and on the
crops; and the clipped share on O-HAZE and crops is not higher by more than 0.5 points. Among those
that pass, the highest O-HAZE + crops PSNR wins.

Added 2026-12-04, after a candidate passed all of that and then lost up to 3 dB when adapted
(benchmarks/default_model.md, "CPU candidates 2"): the bundled model is where `dehazekit adapt`
starts, so with ``--adapt-gt`` (one benchmarks/adapt_gt.py result per candidate, same order, run with
the candidate as ``--model``, and ``--adapt-gt-bundled`` for the bundled model, same seed) the mean
PSNR after the default adaptation, over the rows both ran, must not be lower either, and adaptation
must not harm more: the worst row's loss against no adaptation not larger than the bundled model's
(that candidate passed the mean, +0.04 dB, and failed this, -1.92 vs -0.04 dB).

    python benchmarks/default_model_pick.py --bundled eval_bundled.json --candidates v1.json v2.json \
        [--adapt-gt-bundled agt_bundled.json --adapt-gt agt_v1.json agt_v2.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MAX_CLIP_INCREASE = 0.005


def _mean(blocks: list[dict], key: str, side: str = "output") -> float:
    values = []
    for block in blocks:
        m = block["mean"][side]
        values.append(m["clip_lo"] + m["clip_hi"] if key == "clip" else m[key])
    return float(np.mean(values))


def summary(result: dict) -> dict[str, float]:
    """The numbers the rule reads, from one eval_default_model JSON."""
    ohaze, crops, synth = [result["ohaze"]], list(result["crops"].values()), list(result["synth"].values())
    return {
        "ohaze_psnr": _mean(ohaze, "psnr"),
        "crops_psnr": _mean(crops, "psnr"),
        "synth_psnr": _mean(synth, "psnr"),
        "ohaze_luma_err": abs(_mean(ohaze, "luma") - _mean(ohaze, "luma", "gt")),
        "crops_luma_err": float(np.mean([abs(_mean([b], "luma") - _mean([b], "luma", "gt")) for b in crops])),
        "clip": _mean(ohaze + crops, "clip"),
    }


def verdict(bundled: dict[str, float], cand: dict[str, float]) -> list[str]:
    """The rule's failures for one candidate (empty = passes)."""
    fails = [f"{k} lower" for k in ("ohaze_psnr", "crops_psnr", "synth_psnr") if cand[k] < bundled[k]]
    fails += [f"{k} not smaller" for k in ("ohaze_luma_err", "crops_luma_err") if cand[k] >= bundled[k]]
    if cand["clip"] > bundled["clip"] + MAX_CLIP_INCREASE:
        fails.append("clipping up")
    return fails


def adapted_psnr(result: dict, tasks: set[str], method: str = "lora:offline") -> float:
    """Mean over ``tasks`` of the mean PSNR the default adaptation shipped (an adapt_gt.py result)."""
    rows = {r["task"]: r["methods"][method] for r in result["records"] if method in r["methods"]}
    return float(np.mean([np.mean([image["psnr"] for image in rows[t]]) for t in sorted(tasks)]))


def worst_gain(result: dict, tasks: set[str], method: str = "lora:offline") -> float:
    """The lowest change of mean PSNR, adapted against no adaptation, over ``tasks``."""
    gains = []
    for r in result["records"]:
        if r["task"] in tasks:
            gains.append(
                np.mean([i["psnr"] for i in r["methods"][method]])
                - np.mean([i["psnr"] for i in r["methods"]["none"]])
            )
    return float(min(gains))


def _tasks(result: dict, method: str) -> set[str]:
    return {r["task"] for r in result["records"] if method in r["methods"]}


def pick(
    bundled: dict,
    candidates: dict[str, dict],
    adapted: dict[str, dict] | None = None,
    method: str = "lora:offline",
) -> dict:
    """``adapted``: adapt_gt.py results keyed "bundled" and by candidate name (optional); ``method``:
    which of their columns is the default adaptation (e.g. lora:offline@0.75 from ``interp``)."""
    base = summary(bundled)
    rows = {name: {**summary(res), "fails": verdict(base, summary(res))} for name, res in candidates.items()}
    for name in rows if adapted else ():
        tasks = _tasks(adapted["bundled"], method) & _tasks(adapted[name], method)
        mine, theirs = (adapted_psnr(adapted[k], tasks, method) for k in (name, "bundled"))
        rows[name]["adapted_psnr"] = mine
        rows[name]["adapted_worst_gain"] = worst_gain(adapted[name], tasks, method)
        if mine < theirs:
            rows[name]["fails"].append("adapted_psnr lower")
        # losses only: a candidate whose adaptation gains less everywhere is judged by the mean above
        bundled_worst = worst_gain(adapted["bundled"], tasks, method)
        if min(0.0, rows[name]["adapted_worst_gain"]) < min(0.0, bundled_worst):
            rows[name]["fails"].append("adaptation harms more")
    passing = [n for n, r in rows.items() if not r["fails"]]
    best = max(passing, key=lambda n: rows[n]["ohaze_psnr"] + rows[n]["crops_psnr"], default=None)
    return {"bundled": base, "candidates": rows, "picked": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundled", type=Path, required=True)
    ap.add_argument("--candidates", type=Path, nargs="+", required=True)
    ap.add_argument("--adapt-gt-bundled", type=Path, default=None)
    ap.add_argument("--adapt-gt", type=Path, nargs="*", default=None)
    ap.add_argument("--adapt-method", default="lora:offline", help="adapt_gt column, e.g. lora:offline@0.75")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if bool(args.adapt_gt_bundled) != bool(args.adapt_gt) or len(args.adapt_gt or args.candidates) != len(
        args.candidates
    ):
        raise SystemExit("--adapt-gt needs --adapt-gt-bundled and one file per --candidates entry")
    inputs = [args.bundled, *args.candidates, *(args.adapt_gt or []), *filter(None, [args.adapt_gt_bundled])]
    if args.out and args.out.resolve() in {p.resolve() for p in inputs}:
        raise SystemExit(f"--out {args.out} is one of the inputs; choose another file")
    candidates = {p.stem: json.loads(p.read_text()) for p in args.candidates if p.is_file()}
    adapted = None
    if args.adapt_gt:
        adapted = {p.stem: json.loads(a.read_text()) for p, a in zip(args.candidates, args.adapt_gt)}
        adapted["bundled"] = json.loads(args.adapt_gt_bundled.read_text())
    result = pick(json.loads(args.bundled.read_text()), candidates, adapted, args.adapt_method)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
