"""Wall time of BiLaLoRA adaptation (search + top-K fine-tune) vs full fine-tuning of every backbone weight.

Both run in one process on the same backbone (same initial weights), the same real hazy crops (the
same seeded samplers) and the same objective, for the same number of optimiser steps:
  adaptation = Stage 1 search (T_s steps, --hypergrad, default the product's) + Stage 2 fine-tune (T steps,
  top-K LoRA)
  full       = Adam on all backbone parameters for T_s + T steps (one forward/backward per step)
Only the optimisation loops are timed (no loading, no saving). Repeated ``--repeats`` times, alternating,
median reported.

    OMP_NUM_THREADS=2 python benchmarks/adapt_cost.py --images ../shared/data/real_hazy/fattal_bilalora \
        --backbone gunet-t --size 64 --batch-size 2 --search-steps 10 --finetune-steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from dehazekit.adapt.data import UnpairedHazy
from dehazekit.backbones import create_backbone, forward_padded
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, hypergrad, select_top_k
from dehazekit.lora import inject_lora
from dehazekit.objectives import create_objective

RESULTS = Path(__file__).resolve().parent / "results"


def _fresh(backbone: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_backbone(backbone).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def time_adaptation(args, data, objective) -> dict[str, float]:
    from dehazekit.adapt.backbone import candidate_list

    model = _fresh(args.backbone, args.seed)
    candidates = candidate_list(model, "auto")
    inject_lora(model, candidates, rank=args.rank, lora_alpha=16.0)
    search = BilevelSearch(model, objective, SearchConfig(hypergrad=args.hypergrad))
    alpha_s, w_s = data.sampler("alpha", args.batch_size), data.sampler("w", args.batch_size)
    start = time.perf_counter()
    for _ in range(args.search_steps):
        search.step(next(alpha_s), next(w_s))
    t_search = time.perf_counter() - start
    selected = select_top_k(search.gate_values(), args.top_k)
    tuner = FineTuner(model, objective, selected, FinetuneConfig())
    all_s = data.sampler("all", args.batch_size)
    start = time.perf_counter()
    for _ in range(args.finetune_steps):
        tuner.step(next(all_s))
    t_ft = time.perf_counter() - start
    return {
        "search_s": t_search,
        "finetune_s": t_ft,
        "total_s": t_search + t_ft,
        "candidates": len(candidates),
    }


def time_full_finetune(args, data, objective) -> dict[str, float]:
    model = _fresh(args.backbone, args.seed)
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-4)
    sampler = data.sampler("all", args.batch_size)
    steps = args.search_steps + args.finetune_steps
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(sampler)
        loss = objective(batch, forward_padded(model, batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
    return {
        "total_s": time.perf_counter() - start,
        "steps": steps,
        "trainable_params": sum(p.numel() for p in params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--images", default=str(shared / "data/real_hazy/fattal_bilalora"))
    parser.add_argument("--backbone", default="gunet-t")
    parser.add_argument("--objective", default="dcp")
    parser.add_argument("--hypergrad", default=hypergrad.DEFAULT_METHOD)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--search-steps", type=int, default=10)
    parser.add_argument("--finetune-steps", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "adapt_cost.json"))
    args = parser.parse_args()

    data = UnpairedHazy(args.images, size=args.size, seed=args.seed)
    objective = create_objective(args.objective)
    runs = {"adapt": [], "full": []}
    time_adaptation(args, data, objective)  # warm-up: first-call allocations and lazy imports
    for _ in range(args.repeats):
        runs["adapt"].append(time_adaptation(args, data, objective))
        runs["full"].append(time_full_finetune(args, data, objective))
    med = {k: statistics.median(r["total_s"] for r in v) for k, v in runs.items()}
    result = {
        "args": vars(args),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "images": len(data),
        "adapt_median_s": med["adapt"],
        "full_median_s": med["full"],
        "ratio_adapt_over_full": med["adapt"] / med["full"],
        "search_median_s": statistics.median(r["search_s"] for r in runs["adapt"]),
        "finetune_median_s": statistics.median(r["finetune_s"] for r in runs["adapt"]),
        "full_trainable_params": runs["full"][0]["trainable_params"],
        "per_step_s": {
            "search": statistics.median(r["search_s"] for r in runs["adapt"]) / args.search_steps,
            "finetune_topk": statistics.median(r["finetune_s"] for r in runs["adapt"])
            / max(args.finetune_steps, 1),
            "full": med["full"] / (args.search_steps + args.finetune_steps),
        },
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
