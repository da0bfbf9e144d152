"""Where to put LoRA: BiLaLoRA's layer search vs simple selections, on ground truth (tiny CPU sizes).

One GT task of benchmarks/adapt_gt_tasks.py (a synthetic haze domain over disjoint clear photos), the bundled
gunet-t, and a supervised L1 objective on the adaptation images' GT (issue 13 allows it as a second objective:
it separates "where to adapt" from "what signal"). Every method gets the same number of optimiser steps
T = S + F on the same seeded batches; PSNR/SSIM on the disjoint evaluation images.
  none; full (Adam on every weight, T steps); all-lora (ungated LoRA on every candidate block, T steps);
  even-K / random-K (draws) / oracle-K: LoRA on K fixed blocks for T steps; dW-K: all-block LoRA for S steps,
  top-K by ||dW||/||W||, then F steps on those (searched weights kept); bilalora:<hypergrad>: S search steps +
  F fine-tune steps (the product's BilevelSearch + FineTuner). The oracle ranks blocks by the PSNR gain of
  LoRA on that block alone for T steps; each ranking's Spearman correlation with it is reported.
Time-to-quality: evaluation PSNR every ``--curve-every`` steps for full and the bilalora runs (evaluation time
excluded from wall time).

    OMP_NUM_THREADS=1 python benchmarks/ablation.py        # -> benchmarks/results/ablation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt_gt_tasks as tasks_mod  # noqa: E402
from adapt_gt import _paired_batches, evaluate  # noqa: E402

from dehazekit.backbones import forward_padded  # noqa: E402
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, rank_blocks  # noqa: E402
from dehazekit.lora import inject_lora, lora_layers, remove_lora  # noqa: E402
from dehazekit.runtimes.io_utils import atomic_write_text  # noqa: E402

log = logging.getLogger("ablation")
RESULTS = Path(__file__).resolve().parent / "results"


class PairedL1:
    """L1 to the GT of the batch it is called with (batches are registered by identity before use)."""

    def __init__(self) -> None:
        self.gt: dict[int, torch.Tensor] = {}

    def __call__(self, hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return (out - self.gt[id(hazy)]).abs().mean()


class Run:
    """Shared state of one benchmark run: task, batches, objective, base model, timing curves."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.task = tasks_mod.synthetic(
            args.domain, args.n_adapt, args.n_eval, size=args.side, seed=args.seed
        )
        self.objective = PairedL1()
        rng = np.random.default_rng(args.seed)
        gen = _paired_batches(self.task, args.size, args.batch, rng, True)
        self.device = torch.device(args.device)
        self.batches = [
            tuple(t.to(self.device) for t in next(gen)) for _ in range(2 * (args.search + args.finetune))
        ]
        for hazy, gt in self.batches:
            self.objective.gt[id(hazy)] = gt
        self.curves: dict[str, list[tuple[float, float]]] = {}

    def base(self) -> torch.nn.Module:
        from dehazekit.catalog import WEIGHTS_SYNTHETIC, bundled_model_dir
        from dehazekit.models import load_model

        torch.manual_seed(self.args.seed)
        model = load_model(bundled_model_dir(WEIGHTS_SYNTHETIC), backbone="gunet-t").eval().to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def psnr(self, model: torch.nn.Module) -> dict[str, float]:
        rows = evaluate(model, self.task, None)
        return {
            "psnr": statistics.fmean(r["psnr"] for r in rows),
            "ssim": statistics.fmean(r["ssim"] for r in rows),
        }

    def clock(self) -> float:
        """Wall clock after the device's queued work (CUDA runs asynchronously)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def pair(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:  # (batch_alpha, batch_w) of step t
        return self.batches[2 * t][0], self.batches[2 * t + 1][0]


def _train(
    run: Run,
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    steps: int,
    lr: float,
    curve: str | None = None,
    offset: tuple[int, float] = (0, 0.0),
) -> float:
    """Adam on ``params`` for ``steps`` steps of the shared batches; returns wall seconds (evaluation
    excluded)."""
    opt = torch.optim.Adam(params, lr=lr)
    wall = 0.0
    for t in range(steps):
        start = run.clock()
        hazy = run.batches[t + offset[0]][0]
        loss = run.objective(hazy, forward_padded(model, hazy))
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        wall += run.clock() - start
        _curve_point(run, model, curve, offset[0] + t + 1, offset[1] + wall)
    return wall


def _curve_point(run: Run, model: torch.nn.Module, curve: str | None, step: int, wall: float) -> None:
    if curve is not None and step % run.args.curve_every == 0:
        run.curves.setdefault(curve, []).append((round(wall, 2), round(run.psnr(model)["psnr"], 3)))


def fixed_blocks(run: Run, blocks: list[str], curve: str | None = None) -> tuple[torch.nn.Module, float, int]:
    model = run.base()
    inject_lora(model, blocks, rank=run.args.rank, lora_alpha=2.0 * run.args.rank, gated=False)
    params = [p for n, p in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]
    for p in params:
        p.requires_grad_(True)
    wall = _train(run, model, params, run.args.search + run.args.finetune, run.args.lr_w, curve)
    return model, wall, sum(p.numel() for p in params)


def full(run: Run) -> tuple[torch.nn.Module, float, int]:
    model = run.base()
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    wall = _train(run, model, params, run.args.search + run.args.finetune, run.args.lr_full, "full")
    return model, wall, sum(p.numel() for p in params)


def dw_topk(run: Run, candidates: list[str]) -> tuple[torch.nn.Module, float, int, list[str]]:
    """All-block LoRA for S steps, rank blocks by ||dW|| / ||W||, fine-tune the top-K for F steps."""
    model = run.base()
    inject_lora(model, candidates, rank=run.args.rank, lora_alpha=2.0 * run.args.rank, gated=False)
    params = [p for n, p in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]
    for p in params:
        p.requires_grad_(True)
    wall = _train(run, model, params, run.args.search, run.args.lr_w)
    ratio: dict[str, list[float]] = {}
    with torch.no_grad():
        for _, layer in lora_layers(model):
            rel = float(layer.get_delta_weight().norm() / layer.base_layer.weight.norm())
            ratio.setdefault(layer.block, []).append(rel)
    scores = {b: statistics.fmean(v) for b, v in ratio.items()}
    selected = rank_blocks(scores)[: run.args.k]
    remove_lora(model, keep=selected)
    params = [p for n, p in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]
    wall += _train(run, model, params, run.args.finetune, run.args.lr_w, offset=(run.args.search, wall))
    return model, wall, sum(p.numel() for p in params), rank_blocks(scores)


def bilalora(
    run: Run, candidates: list[str], method: str
) -> tuple[torch.nn.Module, float, int, list[str], dict]:
    a = run.args
    model = run.base()
    torch.manual_seed(a.seed)
    inject_lora(model, candidates, rank=a.rank, lora_alpha=2.0 * a.rank, gated=True)
    search = BilevelSearch(
        model, run.objective, SearchConfig(hypergrad=method, lr_w=a.lr_w, lr_alpha=a.lr_alpha)
    )
    wall, curve = 0.0, f"bilalora:{method}"
    for t in range(a.search):
        start = run.clock()
        search.step(*run.pair(t))
        wall += run.clock() - start
        _curve_point(run, model, curve, t + 1, wall)
    gates = search.gate_values()
    selected = rank_blocks(gates)[: a.k]
    tuner = FineTuner(model, run.objective, selected, FinetuneConfig(lr=a.lr_w))
    for t in range(a.finetune):
        start = run.clock()
        tuner.step(run.batches[a.search + t][0])
        wall += run.clock() - start
        _curve_point(run, model, curve, a.search + t + 1, wall)
    return model, wall, sum(p.numel() for p in tuner.w.values()), rank_blocks(gates), gates


def spearman(ranking: list[str], reference: list[str]) -> float:
    """Spearman correlation of two complete rankings of the same names (no ties)."""
    pos = {b: i for i, b in enumerate(reference)}
    n = len(ranking)
    d2 = sum((i - pos[b]) ** 2 for i, b in enumerate(ranking))
    return 1 - 6 * d2 / (n * (n * n - 1))


def _row(run: Run, model, wall: float, params: int, **extra) -> dict:
    return {**run.psnr(model), "wall_s": round(wall, 2), "trained_params": params, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domain", default="dense")
    parser.add_argument("--n-adapt", type=int, default=6)
    parser.add_argument("--n-eval", type=int, default=3)
    parser.add_argument("--side", type=int, default=128, help="images are loaded at this size")
    parser.add_argument("--size", type=int, default=48, help="training crop size")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--search", type=int, default=6)
    parser.add_argument("--finetune", type=int, default=18)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr-w", type=float, default=1e-3)
    parser.add_argument("--lr-alpha", type=float, default=1e-2)
    parser.add_argument("--lr-full", type=float, default=1e-4)
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--hypergrads", nargs="+", default=["rank1", "first-order", "cg", "unrolled"])
    parser.add_argument("--curve-every", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dehazekit").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = Run(args)
    from dehazekit.adapt.backbone import candidate_list

    candidates = candidate_list(run.base(), "auto")
    rows: dict[str, dict] = {"none": _row(run, run.base(), 0.0, 0)}
    rankings: dict[str, list[str]] = {}

    def save() -> None:
        result = {
            "benchmark": "ablation",
            "args": {k: str(v) for k, v in vars(args).items()},
            "candidates": candidates,
            "rows": rows,
            "rankings": rankings,
            "curves": run.curves,
            "command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/ablation.py", *sys.argv[1:]]),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")

    singles = {}
    for block in candidates:  # the oracle: LoRA on one block alone
        model, wall, params = fixed_blocks(run, [block])
        singles[block] = run.psnr(model)["psnr"] - rows["none"]["psnr"]
        log.info("single %s: %+.3f dB (%.0f s)", block, singles[block], time.perf_counter() - t0)
    rankings["oracle"] = rank_blocks(singles)
    rows["oracle-K"] = _row(
        run, *fixed_blocks(run, rankings["oracle"][: args.k]), blocks=rankings["oracle"][: args.k]
    )
    rows["single-block gains (dB)"] = {b: round(v, 3) for b, v in singles.items()}
    save()
    rows["full"] = _row(run, *full(run))
    rows["all-lora"] = _row(run, *fixed_blocks(run, candidates))
    even = [candidates[round(i * (len(candidates) - 1) / (args.k - 1))] for i in range(args.k)]
    rows["even-K"] = _row(run, *fixed_blocks(run, even), blocks=even)
    draws = []
    for d in range(args.random_draws):
        blocks = random.Random(args.seed + d).sample(candidates, args.k)
        model, wall, params = fixed_blocks(run, blocks)
        draws.append(_row(run, model, wall, params, blocks=blocks))
    rows["random-K"] = {
        "psnr": statistics.fmean(r["psnr"] for r in draws),
        "ssim": statistics.fmean(r["ssim"] for r in draws),
        "psnr_min": min(r["psnr"] for r in draws),
        "psnr_max": max(r["psnr"] for r in draws),
        "wall_s": statistics.fmean(r["wall_s"] for r in draws),
        "trained_params": draws[0]["trained_params"],
        "draws": draws,
    }
    save()
    model, wall, params, rankings["dW"] = dw_topk(run, candidates)
    rows["dW-K"] = _row(run, model, wall, params, blocks=rankings["dW"][: args.k])
    for method in args.hypergrads:
        model, wall, params, rankings[f"bilalora:{method}"], gates = bilalora(run, candidates, method)
        rows[f"bilalora:{method}"] = _row(
            run,
            model,
            wall,
            params,
            blocks=rankings[f"bilalora:{method}"][: args.k],
            gates={b: round(g, 5) for b, g in gates.items()},
        )
        save()
    for name, ranking in rankings.items():
        key = "dW-K" if name == "dW" else name if name != "oracle" else "oracle-K"
        rows[key]["spearman_to_oracle"] = round(spearman(ranking, rankings["oracle"]), 3)
        rows[key]["top_k_overlap_with_oracle"] = len(
            set(ranking[: args.k]) & set(rankings["oracle"][: args.k])
        )
    save()
    log.info("wrote %s in %.0f s", args.out, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
