"""BILD (bi-level patch reweighting) on a dataset where some patches carry much denser haze.

Data: clean crops from ../shared/data/clear (first --images files, held-out split for the outer loop
and for validation); each patch gets the homogeneous preset with beta drawn from a two-mode mixture:
light (0.3-1.0) with probability 1 - p_dense, dense (2.5-3.5) with probability p_dense. Haze density of
a patch = 1 - mean transmission.

Two runs from the same initial weights, the same sample stream and the same number of steps:
  none: plain L1;  bild: L1 reweighted by BILD (dehazekit.train.bild).
Reported: Spearman rho between BILD's weights and haze density (a) over the patches seen in the second
half of training, (b) on a fresh probe set at the end; validation PSNR/SSIM of both runs on a fixed
held-out mixed set and on the plain homogeneous preset; wall time of both loops.

    OMP_NUM_THREADS=1 python benchmarks/bild.py --steps 400
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from dehazekit.backbones import create_backbone
from dehazekit.data.datasets import PairedHaze, fixed_pairs, split_holdout
from dehazekit.data.images import list_images
from dehazekit.train.bild import BildConfig, BildReweighter
from dehazekit.train.pretrain import evaluate_sets, per_patch_loss

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class MixedDensity:
    """PairedHaze with beta from a light/dense mixture; batch() also returns per-patch densities."""

    def __init__(self, data: PairedHaze, p_dense: float) -> None:
        self.data, self.p_dense = data, p_dense

    def beta(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(2.5, 3.5) if rng.random() < self.p_dense else rng.uniform(0.3, 1.0))

    def batch(self, rng: np.random.Generator, n: int):
        pairs = [self.data.sample(rng, beta=self.beta(rng)) for _ in range(n)]
        hazy = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        clear = (
            torch.from_numpy(np.stack([np.ascontiguousarray(p[1]) for p in pairs]))
            .permute(0, 3, 1, 2)
            .contiguous()
        )
        return hazy, clear, [p[2] for p in pairs]


def _fixed(sampler: MixedDensity, n: int, seed: int):
    hazy, clear, params = sampler.batch(np.random.default_rng(seed), n)
    return hazy, clear, np.array([p["density"] for p in params])


def run(args: argparse.Namespace, reweight: bool) -> dict:
    files = list_images(args.clear)[: args.images]
    train_files, held = split_holdout(files, 0.25)
    train = MixedDensity(PairedHaze(train_files, ["homogeneous"], args.crop, max_side=256), args.p_dense)
    outer = MixedDensity(PairedHaze(held, ["homogeneous"], args.crop, max_side=256), args.p_dense)
    torch.manual_seed(args.seed)
    model = create_backbone(args.backbone)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rw = BildReweighter(
        BildConfig(lr=args.bild_lr, entropy_weight=args.entropy), outer, args.batch_size, seed=7
    )
    rng = np.random.default_rng(args.seed)
    seen_w, seen_d = [], []
    loss_fn = lambda p, t: per_patch_loss(p, t, 0.0)
    t0 = time.perf_counter()
    for step in range(args.steps):
        hazy, clear, params = train.batch(rng, args.batch_size)
        if reweight:
            rw.step(model, opt, hazy, clear, loss_fn)
            if step >= args.steps // 2:
                seen_w += rw.last["weights"].tolist()
                seen_d += [p["density"] for p in params]
        else:
            loss = loss_fn(model(hazy), clear).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    wall = time.perf_counter() - t0
    vh, vc, _ = _fixed(outer, args.val_count, seed=1234)
    homog = fixed_pairs(held, "homogeneous", args.val_count, seed=99, size=args.crop)
    side = min(min(p[1].shape[:2]) for p in homog)
    hh = torch.from_numpy(np.stack([p[1][:side, :side] for p in homog])).permute(0, 3, 1, 2).contiguous()
    hc = torch.from_numpy(np.stack([p[2][:side, :side] for p in homog])).permute(0, 3, 1, 2).contiguous()
    out = {
        "wall_s": wall,
        "val": evaluate_sets(model, {"mixed": (vh, vc), "homogeneous": (hh, hc)}),
        "hazy_input": evaluate_sets(None, {"mixed": (vh, vc), "homogeneous": (hh, hc)}),
    }
    if reweight:
        ph, pc, pd = _fixed(train, args.probe, seed=4321)
        w = rw.weights(ph, pc).numpy()
        out["spearman_training"] = float(spearmanr(seen_w, seen_d).statistic)
        out["spearman_probe"] = float(spearmanr(w, pd).statistic)
        dense = pd > np.median(pd)
        out["mean_weight_dense_half"] = float(w[dense].mean())
        out["mean_weight_light_half"] = float(w[~dense].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clear", type=Path, default=SHARED / "data" / "clear" / "kodak24")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--backbone", default="tiny-gunet")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--bild-lr", type=float, default=1e-3)
    ap.add_argument("--entropy", type=float, default=1e-3)
    ap.add_argument("--p-dense", type=float, default=0.3)
    ap.add_argument("--val-count", type=int, default=48)
    ap.add_argument("--probe", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bild.json")
    args = ap.parse_args()
    none, bild = run(args, reweight=False), run(args, reweight=True)
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "none": none,
        "bild": bild,
        "psnr_gain_bild_minus_none": {
            k: bild["val"][k]["psnr"] - none["val"][k]["psnr"] for k in none["val"]
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"Spearman rho(weight, density): training {bild['spearman_training']:+.3f}, "
        f"probe {bild['spearman_probe']:+.3f}"
    )
    for k in none["val"]:
        print(
            f"{k:12s} hazy {none['hazy_input'][k]['psnr']:.2f} dB | none {none['val'][k]['psnr']:.2f} dB "
            f"| bild {bild['val'][k]['psnr']:.2f} dB"
        )
    print(f"wall: none {none['wall_s']:.1f} s, bild {bild['wall_s']:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
