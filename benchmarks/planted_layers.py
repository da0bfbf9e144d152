"""Planted bottleneck: does the bilevel search find the blocks where the model is actually wrong?

Setup (per seed): a gUNet with the gunet-t layout (16 candidate blocks; 8 base channels, 3x3 kernels
to keep CPU time small) and random but fixed weights is the model to adapt. The target is the same
network with low-rank deltas planted in the 1x1 convs of 3 randomly chosen candidate blocks. The
objective, registered only here, is a supervised proxy: MSE between the adapted output and the
target's output on the same unlabeled input (random smooth images). Gated LoRA goes on every
candidate block; the search ranks the gates; precision@K = |top-K & planted| / K.

Compared: the four hypergradients (rank1, first-order, unrolled, reference) with identical data,
initialisation and step counts; 'uniform' (all gates equal -> ties broken by name) and 'random'
(K random blocks) selections. Then Stage 2 fine-tunes the rank1 selection; wall times are reported.

    OMP_NUM_THREADS=1 python benchmarks/planted_layers.py   # -> benchmarks/results/planted_layers.{json,md}
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones import candidate_blocks, create_backbone, forward_padded, spec_of
from dehazekit.bilevel import (
    BilevelSearch,
    FinetuneConfig,
    FineTuner,
    SearchConfig,
    precision_at_k,
    select_top_k,
)
from dehazekit.lora import inject_lora
from dehazekit.objectives.base import create_objective, register_objective
from dehazekit.runtimes.io_utils import atomic_write_text

log = logging.getLogger("planted_layers")
RESULTS = Path(__file__).resolve().parent / "results"
METHODS_ALL = ("rank1", "first-order", "unrolled", "reference")
METHODS = METHODS_ALL  # narrowed by --methods


@dataclass
class Setup:
    backbone: str = "gunet-t"
    backbone_config: tuple = (("base_dim", 8), ("kernel_size", 3))
    planted: int = 3
    top_k: int = 3
    plant_rank: int = 2
    plant_strength: float = 1.0  # ||delta|| / ||W|| per planted conv: the planted blocks dominate the error
    size: int = 32
    batch: int = 4
    pool: int = 64  # images per split
    search_steps: int = 480
    finetune_steps: int = 60
    rank: int = 4
    lora_alpha: float = 8.0
    lr_w: float = 1e-2  # above the product default (1e-4) so LoRA fits within a short CPU search
    lr_alpha: float = 3e-4


class PlantedProxy(nn.Module):
    """Supervised proxy objective: mean squared error to the planted target's output on the same input."""

    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        self.target = target.eval().requires_grad_(False)

    def forward(self, hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            goal = forward_padded(self.target, hazy)
        return F.mse_loss(out, goal)


register_objective("planted-proxy")(PlantedProxy)


def smooth_images(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) in [0, 1]: sums of upsampled noise at a few scales (image-like spectra)."""
    out = torch.zeros(n, 3, size, size)
    for cells, weight in ((2, 1.0), (4, 0.6), (8, 0.35), (size, 0.15)):
        noise = torch.rand(n, 3, cells, cells, generator=gen)
        out += weight * F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    out -= out.amin(dim=(1, 2, 3), keepdim=True)
    return out / out.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


@torch.no_grad()
def randomize_weights(model: nn.Module, gen: torch.Generator, gain: float = 1.0) -> nn.Module:
    """Fixed random weights with O(1) block contributions (LeCun-normal convs, small biases).

    The backbone's own init scales residual branches down so far that a freshly built network is
    close to the identity; planted deltas would then be invisible in its output.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * gain / fan_in ** 0.5)
            if module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.02)
    return model


@torch.no_grad()
def plant(model: nn.Module, blocks: list[str], rank: int, strength: float, gen: torch.Generator) -> nn.Module:
    """Copy of ``model`` with a low-rank delta added to every LoRA-eligible conv of ``blocks``."""
    target = copy.deepcopy(model)
    exclude = spec_of(model).exclude
    for block in blocks:
        for name, module in target.get_submodule(block).named_modules():
            if type(module) is not nn.Conv2d or exclude(f"{block}.{name}", module):
                continue
            w = module.weight
            u = torch.randn(w.shape[0], rank, generator=gen)
            v = torch.randn(rank, w[0].numel(), generator=gen)
            delta = (u @ v).view_as(w)
            w += delta * (strength * w.norm() / delta.norm())
    return target


def run_search(base: nn.Module, objective: nn.Module, method: str, setup: Setup,
               data: tuple[torch.Tensor, torch.Tensor], seed: int) -> tuple[nn.Module, dict[str, float], float]:
    torch.manual_seed(seed)  # identical LoRA init for every method
    model = copy.deepcopy(base)
    inject_lora(model, candidate_blocks(model), rank=setup.rank, lora_alpha=setup.lora_alpha)
    search = BilevelSearch(model, objective, SearchConfig(hypergrad=method, lr_w=setup.lr_w,
                                                         lr_alpha=setup.lr_alpha))
    pool_alpha, pool_w = data
    order = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(setup.search_steps):
        ia = torch.randint(len(pool_alpha), (setup.batch,), generator=order)
        iw = torch.randint(len(pool_w), (setup.batch,), generator=order)
        search.step(pool_alpha[ia], pool_w[iw])
    return model, search.gate_values(), time.perf_counter() - start


def run_seed(seed: int, setup: Setup) -> dict:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    base = randomize_weights(create_backbone(setup.backbone, **dict(setup.backbone_config)).eval(), gen)
    blocks = candidate_blocks(base)
    planted = sorted(random.Random(seed).sample(blocks, setup.planted))
    target = plant(base, planted, setup.plant_rank, setup.plant_strength, gen)
    objective = create_objective("planted-proxy", {"planted-proxy": {"target": target}})
    data = (smooth_images(setup.pool, setup.size, gen), smooth_images(setup.pool, setup.size, gen))
    with torch.no_grad():
        eval_x = smooth_images(16, setup.size, gen)
        initial_loss = float(objective(eval_x, forward_padded(base, eval_x)))
    row: dict = {"seed": seed, "planted": planted, "initial_loss": initial_loss, "methods": {}}
    for method in METHODS:
        model, gates, wall = run_search(base, objective, method, setup, data, seed)
        selected = select_top_k(gates, k=setup.top_k)
        row["methods"][method] = {"selected": selected, "precision": precision_at_k(selected, planted),
                                  "search_s": round(wall, 2), "gates": {b: round(g, 5) for b, g in gates.items()}}
        log.info("seed %d %-11s p@%d=%.2f  %s  (%.1fs)", seed, method, setup.top_k,
                 row["methods"][method]["precision"], selected, wall)
        if method == "rank1":
            row["finetune"] = finetune(model, objective, selected, setup, data[1], eval_x, seed)
    uniform = select_top_k({b: 0.5 for b in blocks}, k=setup.top_k)
    row["methods"]["uniform"] = {"selected": uniform, "precision": precision_at_k(uniform, planted)}
    draws = [random.Random(seed * 1000 + i).sample(blocks, setup.top_k) for i in range(1000)]
    row["methods"]["random"] = {"precision": statistics.fmean(precision_at_k(d, planted) for d in draws),
                                "note": "mean over 1000 random draws"}
    return row


def finetune(model: nn.Module, objective: nn.Module, selected: list[str], setup: Setup, pool: torch.Tensor,
             eval_x: torch.Tensor, seed: int) -> dict:
    tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=setup.lr_w))
    order = torch.Generator().manual_seed(seed + 1)
    start = time.perf_counter()
    for _ in range(setup.finetune_steps):
        tuner.step(pool[torch.randint(len(pool), (setup.batch,), generator=order)])
    wall = time.perf_counter() - start
    with torch.no_grad():
        loss = float(objective(eval_x, forward_padded(model, eval_x)))
    return {"finetune_s": round(wall, 2), "eval_loss_after": loss}


def summarise(rows: list[dict], setup: Setup) -> dict:
    names = [*METHODS, "uniform", "random"]
    summary = {}
    for name in names:
        values = [row["methods"][name]["precision"] for row in rows]
        summary[name] = {"per_seed": [round(v, 3) for v in values], "mean": round(statistics.fmean(values), 3),
                         "seeds_at_1": sum(v == 1.0 for v in values)}
        times = [row["methods"][name].get("search_s") for row in rows]
        if all(t is not None for t in times):
            summary[name]["search_s_mean"] = round(statistics.fmean(times), 1)
    ft = [row["finetune"] for row in rows]
    summary["finetune_rank1"] = {"finetune_s_mean": round(statistics.fmean(f["finetune_s"] for f in ft), 1),
                                 "eval_loss_before": [round(r["initial_loss"], 5) for r in rows],
                                 "eval_loss_after": [round(f["eval_loss_after"], 5) for f in ft]}
    return summary


def markdown(summary: dict, setup: Setup, command: str) -> str:
    k = setup.top_k
    lines = [f"| selection | precision@{k} per seed | mean | seeds with p@{k}=1 | search wall (s) |",
             "|---|---|---|---|---|"]
    for name in [*METHODS, "uniform", "random"]:
        s = summary[name]
        wall = f"{s['search_s_mean']:.1f}" if "search_s_mean" in s else "-"
        lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in s['per_seed'])} | {s['mean']:.2f} | "
                     f"{s['seeds_at_1']}/{len(s['per_seed'])} | {wall} |")
    ft = summary["finetune_rank1"]
    lines += ["", (f"Stage 2 on the rank1 selection: {setup.finetune_steps} steps, {ft['finetune_s_mean']:.1f} s mean; "
              f"proxy loss before adaptation {ft['eval_loss_before']} -> after search+fine-tune {ft['eval_loss_after']}."),
              "", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--search-steps", type=int, default=Setup.search_steps)
    parser.add_argument("--finetune-steps", type=int, default=Setup.finetune_steps)
    parser.add_argument("--methods", nargs="+", default=list(METHODS_ALL), choices=list(METHODS_ALL))
    parser.add_argument("--name", default="planted_layers", help="output file stem in --out-dir")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    global METHODS
    METHODS = tuple(args.methods)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setup = Setup(search_steps=args.search_steps, finetune_steps=args.finetune_steps)
    start = time.perf_counter()
    rows = [run_seed(seed, setup) for seed in args.seeds]
    summary = summarise(rows, setup)
    command = "OMP_NUM_THREADS=1 python benchmarks/planted_layers.py" + "".join(
        f" {flag} {value}" for flag, value, default in (
            ("--seeds", " ".join(map(str, args.seeds)), "0 1 2"),
            ("--search-steps", args.search_steps, Setup.search_steps),
            ("--finetune-steps", args.finetune_steps, Setup.finetune_steps),
            ("--methods", " ".join(args.methods), " ".join(METHODS_ALL)),
            ("--name", args.name, "planted_layers"),
        ) if str(value) != str(default))
    result = {"benchmark": "planted_layers", "setup": asdict(setup), "summary": summary, "seeds": rows,
              "torch_threads": torch.get_num_threads(), "wall_s": round(time.perf_counter() - start, 1),
              "command": command}
    atomic_write_text(args.out_dir / f"{args.name}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out_dir / f"{args.name}.md", markdown(summary, setup, command))
    log.info("\n%s", markdown(summary, setup, command))


if __name__ == "__main__":
    main()
