"""Is there a brightness reference without GT? Channel consistency of the implied transmission.

Haze is near-achromatic, so for input I, airlight A and a dehazed output J the transmission implied per
channel, t_c = (A_c - I_c) / (A_c - J_c), should agree across channels when J has the right
brightness. A gain g on J changes how well they agree, so argmin_g of the disagreement (mean over
pixels of std_c(t) / mean_c(t)) estimates the gain J needs, without GT. Two questions:

    # 1. does the estimate follow the gain GT asks for (best least-squares gain of J to GT)?
    python benchmarks/adapt_gt_brightness_ref.py --eval --out benchmarks/results/adapt_gt_brightness_ref_eval
    # 2. as a guard signal: does it tell harmful checkpoints from good ones (adapt_gt_guard_probe.py probes)?
    python benchmarks/adapt_gt_brightness_ref.py --probes /tmp/probeMixA /tmp/probeMixB \
        --out benchmarks/results/adapt_gt_brightness_ref_probe_mixbase
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
GAINS = np.linspace(0.6, 1.6, 41)


def disagreement(hazy: np.ndarray, out: np.ndarray, airlight: np.ndarray) -> float:
    """Mean relative spread of the per-channel implied transmission over usable pixels (HWC, [0, 1])."""
    num, den = airlight - hazy, airlight - out
    usable = (den > 0.08).all(-1) & (num > 0.02).all(-1)  # far enough from A for a stable ratio
    t = num[usable] / den[usable]
    t = t[(t.max(-1) < 1.0) & (t.min(-1) > 0.02)]
    return float((t.std(-1) / t.mean(-1)).mean()) if len(t) >= 100 else float("nan")


def estimated_gain(hazy: np.ndarray, out: np.ndarray) -> float:
    """The gain on ``out`` (HWC) whose implied transmission agrees best across channels; nan if none."""
    from dehazekit.objectives.rehaze import estimate_airlight

    airlight = estimate_airlight(torch.from_numpy(hazy).permute(2, 0, 1)[None].float())
    airlight = airlight[0].flatten().double().numpy()
    scores = [disagreement(hazy, np.clip(g * out, 0, 1), airlight) for g in GAINS]
    return float("nan") if np.all(np.isnan(scores)) else float(GAINS[int(np.nanargmin(scores))])


def eval_rows() -> list[dict]:
    from adapt_gt import MODES, base_weights, build_tasks, dehaze

    from dehazekit.models import load_model

    model = load_model(base_weights(MODES["default"]), backbone="gunet-t")
    rows = []
    for task in build_tasks(MODES["default"], None):
        if task.protocol == "transductive" and not task.name.startswith("bedde"):
            continue  # the same images as the leave-one-out rows
        for name, hazy, gt in task.evals:
            out = dehaze(model, hazy).astype(np.float64)
            gt_gain = float((out * gt).sum() / (out * out).sum())
            rows.append(
                {"task": task.name, "image": name, "estimated": estimated_gain(hazy, out), "gt": gt_gain}
            )
    return rows


def probe_rows(folders: list[Path]) -> list[dict]:
    rows = []
    for folder in folders:
        for path in sorted(folder.glob("*.npz")):
            z = np.load(path, allow_pickle=True)
            hazy = [np.asarray(h, dtype=np.float64).transpose(1, 2, 0) for h in z["hazy"]]

            def median_gain(outs) -> float:
                gains = [
                    estimated_gain(h, np.asarray(o, dtype=np.float64).transpose(1, 2, 0))
                    for h, o in zip(hazy, outs)
                ]
                return float(np.nanmedian(gains)) if not np.all(np.isnan(gains)) else float("nan")

            checks = [
                {
                    "step": int(s),
                    "dpsnr": float(z["psnr"][k] - z["psnr_none"]),
                    "gain": median_gain(z[f"cand_{s}"]),
                }
                for k, s in enumerate(z["steps"])
            ]
            rows.append(
                {"run": f"{folder.name}/{path.stem}", "base_gain": median_gain(z["base"]), "checks": checks}
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--probes", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.eval:
        rows = eval_rows()
        est, gt = (
            np.array([r[k] for r in rows if not np.isnan(r["estimated"])]) for k in ("estimated", "gt")
        )
        summary = {
            "images": len(est),
            "correlation": float(np.corrcoef(est, gt)[0, 1]),
            "same_direction": float(np.mean((est > 1) == (gt > 1))),
            "mean_estimated": float(est.mean()),
            "mean_gt": float(gt.mean()),
        }
        result = {"rows": rows, "summary": summary}
    else:
        result = {"runs": probe_rows(args.probes)}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("summary", result), indent=1)[:4000])


if __name__ == "__main__":
    main()
