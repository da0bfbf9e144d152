"""Which way does a re-haze label push brightness, row by row, and which way does GT ask?

The CLIP-free objectives train f(I') towards a label, with I' = J t + A (1 - t) the base output J of a
target image re-hazed with that image's airlight A. Before any step, the label's pull on brightness is
label luma / f0(I') luma: above 1 the adapter learns to brighten. This compares, on every task of
benchmarks/adapt_gt.py, that pull (on the adaptation images) with what GT asks of the base model
(GT luma / base output luma on the evaluation images), for two labels:

    offline   label J (the base model's output)
    airswap   label f0(J t + A0 (1 - t)): the same haze with a grey airlight A0 the base was trained on

    OMP_NUM_THREADS=2 python benchmarks/adapt_gt_label_signal.py \
        --out benchmarks/results/adapt_gt_label_signal
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@torch.no_grad()
def task_row(model: torch.nn.Module, task, label_airlight: float, draws: int) -> dict:
    from adapt_gt import _luma, dehaze

    from dehazekit.backbones import forward_padded
    from dehazekit.objectives.rehaze import RehazeObjective

    rehaze = RehazeObjective()  # offline's re-haze: its transmission draws and airlight estimate

    def luma(x: torch.Tensor) -> float:
        return _luma(x[0].permute(1, 2, 0).numpy())

    def run(x: torch.Tensor) -> torch.Tensor:
        return forward_padded(model, x).clamp(0, 1)

    sums = np.zeros(3)
    for hazy in task.adapt:
        x = torch.from_numpy(np.ascontiguousarray(hazy, dtype=np.float32)).permute(2, 0, 1)[None]
        clear = run(x)
        for _ in range(draws):
            t = rehaze.transmission(clear)
            own = run(rehaze.rehaze(x, clear, t))
            grey = run(clear * t + label_airlight * (1 - t))
            sums += (luma(clear), luma(own), luma(grey))
    label, own, grey = sums / (len(task.adapt) * draws)
    base = np.mean([_luma(dehaze(model, hazy)) for _, hazy, _ in task.evals])
    gt = np.mean([_luma(g) for _, _, g in task.evals])
    return {
        "task": task.name,
        "gt_asks": float(gt / base),
        "offline_pull": float(label / own),
        "airswap_pull": float(grey / own),
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| task | GT asks (GT / base luma) | offline pull | airswap pull |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['gt_asks']:.3f} | {r['offline_pull']:.3f} | {r['airswap_pull']:.3f} |"
        for r in rows
    ]
    for key in ("offline_pull", "airswap_pull"):
        corr = np.corrcoef([r["gt_asks"] for r in rows], [r[key] for r in rows])[0, 1]
        lines.append(f"\ncorrelation of GT asks with {key}: {corr:.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the bundled one adapt starts from)")
    ap.add_argument("--label-airlight", type=float, default=None, help="default: airswap's")
    ap.add_argument("--draws", type=int, default=4, help="transmission draws per adaptation image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from adapt_gt import MODES, base_weights, build_tasks
    from adapt_gt_seeds import write_replay

    from dehazekit.models import load_model
    from dehazekit.objectives.rehaze import AIRSWAP_LABEL_AIRLIGHT

    if args.label_airlight is None:
        args.label_airlight = AIRSWAP_LABEL_AIRLIGHT
    torch.manual_seed(args.seed)
    model = load_model(args.model or base_weights(MODES["default"]), backbone="gunet-t").eval()
    rows = [task_row(model, t, args.label_airlight, args.draws) for t in build_tasks(MODES["default"], None)]
    meta = {"model": args.model, "label_airlight": args.label_airlight, "draws": args.draws}
    meta["seed"] = args.seed
    text = "\n".join(table(rows)) + "\n"
    write_replay(args.out, {"meta": meta, "rows": rows}, text, [])
    print(text)


if __name__ == "__main__":
    main()
