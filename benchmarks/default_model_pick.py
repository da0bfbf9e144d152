"""The adoption rule for a new bundled default model, fixed before the candidates were trained.

A candidate replaces the bundled model only if, on `tools/eval_default_model.py`'s sets (same data,
same run): mean PSNR is not lower on O-HAZE 27+35, on the 42 figure crops (mean over families) and on
the synthetic validation presets (mean over presets); mean luma is closer to GT on O-HAZE and on the
crops; and the clipped share on O-HAZE and crops is not higher by more than 0.5 points. Among those
that pass, the highest O-HAZE + crops PSNR wins.

    python benchmarks/default_model_pick.py --bundled eval_bundled.json --candidates v1.json v2.json
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


def pick(bundled: dict, candidates: dict[str, dict]) -> dict:
    base = summary(bundled)
    rows = {name: {**summary(res), "fails": verdict(base, summary(res))} for name, res in candidates.items()}
    passing = [n for n, r in rows.items() if not r["fails"]]
    best = max(passing, key=lambda n: rows[n]["ohaze_psnr"] + rows[n]["crops_psnr"], default=None)
    return {"bundled": base, "candidates": rows, "picked": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundled", type=Path, required=True)
    ap.add_argument("--candidates", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.out and args.out.resolve() in {p.resolve() for p in [args.bundled, *args.candidates]}:
        raise SystemExit(f"--out {args.out} is one of the inputs; choose another file")
    candidates = {p.stem: json.loads(p.read_text()) for p in args.candidates if p.is_file()}
    result = pick(json.loads(args.bundled.read_text()), candidates)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
