"""Time to quality: PSNR against ground truth vs training wall time, BiLaLoRA vs full fine-tuning.

One task of the ground-truth benchmark (benchmarks/adapt_gt_tasks.py, e.g. ohaze:eval35: adapt on the
unlabeled halves of O-HAZE 27, score O-HAZE 35 against its GT), the bundled gunet-t, the CLIP-free
objective `offline`, the product's data pipeline (UnpairedHazy samplers) and optimisers. Only the
optimisation steps are timed (evaluation, set-up and LoRA injection are not); PSNR is measured every
``--eval-every`` steps. Runs, all from the same weights and crops:
  full                  Adam (lr 2e-5, adapt_gt's) on every weight, fresh random crops each step
  lora                  BiLaLoRA: S search steps (first-order) + F top-K fine-tune steps, random crops
  lora+stop             the same, search stopped once the top-K set is unchanged for --patience steps
  lora+fixed            Stage 2 on a fixed set of --fixed-crops crops, full network every step
  lora+fixed+cache      the same with the frozen prefix replayed (PrefixCache)
  lora+stop+fixed+cache every lever
On a shared machine the load drifts during a run, so a second invocation (--costs-into) measures every
step kind round-robin (one of each per round, medians; benchmarks/adapt_speed_profile.py) and adds
"modelled" curves (each step at its kind's median cost) and a per-phase profile (network forward,
objective incl. rehaze's second pass, backward, optimiser; with --clip also h2c with a random-weight
ViT-B-32, which costs what the real one costs).

    OMP_NUM_THREADS=1 python benchmarks/adapt_speed.py                       # -> results/adapt_speed.json
    OMP_NUM_THREADS=1 python benchmarks/adapt_speed.py --costs-into benchmarks/results/adapt_speed.json --clip
    python benchmarks/adapt_speed.py --report benchmarks/results/adapt_speed.json   # markdown tables
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt_gt_tasks as tasks_mod
from adapt_gt import evaluate
from adapt_speed_profile import full_finetune_setup

from dehazekit.backbones import forward_padded
from dehazekit.bilevel import (
    BilevelSearch,
    FinetuneConfig,
    FineTuner,
    PrefixCache,
    SearchConfig,
    select_top_k,
)
from dehazekit.lora import inject_lora
from dehazekit.objectives import attach_network, create_objective, remember_inputs

log = logging.getLogger("adapt_speed")
RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # name: (early stop, fixed crops, prefix cache)
    "lora": (False, False, False),
    "lora+stop": (True, False, False),
    "lora+fixed": (False, True, False),
    "lora+fixed+cache": (False, True, True),
    "lora+stop+fixed+cache": (True, True, True),
}


def load_task(name: str, side: int, synth_n: tuple[int, int]) -> tasks_mod.Task:
    if name.startswith("synth:"):
        return tasks_mod.synthetic(name.split(":")[1], *synth_n, size=side)
    return next(t for t in tasks_mod.ohaze(side) if t.name == name)


def psnr(model: torch.nn.Module, task) -> float:
    return float(np.mean([r["psnr"] for r in evaluate(model, task, None)]))


class Curve:
    """Training seconds (timed steps only) and PSNR every ``every`` steps."""

    def __init__(self, model, task, every: int) -> None:
        self.model, self.task, self.every = model, task, every
        self.train_s, self.step, self.points = 0.0, 0, [(0, 0.0, psnr(model, task))]

    def timed(self, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        self.train_s += time.perf_counter() - start
        self.step += 1
        if self.step % self.every == 0:
            self.points.append((self.step, self.train_s, psnr(self.model, self.task)))
        return out

    def close(self) -> list[tuple[int, float, float]]:
        if self.points[-1][0] != self.step:
            self.points.append((self.step, self.train_s, psnr(self.model, self.task)))
        return self.points


def run_full(base, objective_name, data, task, args) -> dict:
    model, objective, opt, batches = full_finetune_setup(base, objective_name, data, args)
    curve = Curve(model, task, args.eval_every)

    def step() -> None:
        hazy = next(batches)
        loss = objective(hazy, forward_padded(model, hazy))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(args.full_steps):
        curve.timed(step)
    return {"curve": curve.close(), "train_s": curve.train_s, "steps": curve.step}


def run_lora(base, objective_name, data, task, args, stop: bool, fixed: bool, cache: bool) -> dict:
    from dehazekit.adapt.backbone import candidate_list

    model = copy.deepcopy(base)
    torch.manual_seed(args.seed)
    inject_lora(model, candidate_list(model, "auto"), rank=8, lora_alpha=16.0, gated=True)
    objective = create_objective(objective_name)
    attach_network(objective, model)
    config = SearchConfig(
        lr_w=args.lr_lora, stop_top_k=args.top_k, stop_patience=args.patience if stop else 0
    )
    search = BilevelSearch(model, objective, config)
    alpha_s, w_s = data.sampler("alpha", args.batch_size), data.sampler("w", args.batch_size)
    curve = Curve(model, task, args.eval_every)
    while search.step_count < args.search_steps and not search.converged:
        curve.timed(lambda: search.step(next(alpha_s), next(w_s)))
    search_steps, search_s = search.step_count, curve.train_s
    selected = select_top_k(search.gate_values(), args.top_k)
    tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=args.lr_lora))
    prefix = None
    if fixed:
        fresh = data.sampler("all", args.batch_size)  # as adapt/run.py: the first N crops of Stage 2
        batches = [next(fresh) for _ in range(-(-args.fixed_crops // args.batch_size))]
        remember_inputs(objective, batches)
        prefix = PrefixCache(model, batches)
        if not cache:
            prefix._disable("benchmark: cache off on purpose")
    all_s = data.sampler("all", args.batch_size)
    for i in range(args.finetune_steps):
        if prefix is None:
            curve.timed(lambda: tuner.step(next(all_s)))
        else:
            curve.timed(lambda: tuner.step_fixed(prefix, i % len(prefix.batches)))
    return {
        "curve": curve.close(),
        "train_s": curve.train_s,
        "steps": curve.step,
        "search_steps": search_steps,
        "search_s": search_s,
        "finetune_s": curve.train_s - search_s,
        "selected": selected,
        "prefix_cache": None if prefix is None else prefix.summary(),
    }


def time_to(curve: list, target: float) -> float | None:
    return next((t for _, t, p in curve if p >= target - 1e-9), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="ohaze:eval35")
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--objective", default="offline")
    ap.add_argument("--full-steps", type=int, default=60)
    ap.add_argument("--search-steps", type=int, default=20)
    ap.add_argument("--finetune-steps", type=int, default=60)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--fixed-crops", type=int, default=16)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--lr-full", type=float, default=2e-5)
    ap.add_argument("--lr-lora", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--profile-steps", type=int, default=5, help="profile rounds (0: no profile)")
    ap.add_argument("--clip", action="store_true", help="also profile h2c's input memo (ViT-B-32, random)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "adapt_speed.json")
    ap.add_argument("--report", type=Path, help="print the markdown table of a finished run's JSON")
    ap.add_argument(
        "--costs-into",
        type=Path,
        nargs="*",
        help="measure interleaved per-step costs (--cost-rounds) and add them, with modelled-time tables, "
        "to these finished runs' JSON (same task, sizes and objective)",
    )
    ap.add_argument("--cost-rounds", type=int, default=8)
    args = ap.parse_args()
    if args.report:
        record = json.loads(args.report.read_text())
        for key in ("summary", "modelled"):
            if key in record:
                print(f"{key}:\n{markdown(record, key)}\n")
        return
    if args.costs_into:
        _add_costs(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    from dehazekit.adapt import AdaptConfig
    from dehazekit.adapt.backbone import load_backbone

    task = load_task(args.task, args.side, (6, 3))
    base = load_backbone(AdaptConfig(backbone="gunet-t", weights="synthetic"))
    record: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "command": _command(), "runs": {}}
    data = _data(task, args)
    record["base_psnr"] = psnr(base, task)
    runs = record["runs"]
    runs["full"] = run_full(base, args.objective, data, task, args)
    log.info("full: %.1f s, PSNR %.2f", runs["full"]["train_s"], runs["full"]["curve"][-1][2])
    _write(args.out, record, args)
    for name in args.variants:
        runs[name] = run_lora(base, args.objective, data, task, args, *VARIANTS[name])
        log.info("%s: %.1f s, PSNR %.2f", name, runs[name]["train_s"], runs[name]["curve"][-1][2])
        _write(args.out, record, args)
    print(f"wrote {args.out}; per-step costs and profile: --costs-into {args.out}")


GAINS = (0.25, 0.5, 0.75, 1.0)  # dB over the base model: the time-to-quality levels of the table


def modelled(record: dict) -> dict[str, list]:
    """Curves on a load-independent clock: each step costs the interleaved median of its kind
    (``record["costs"]``); a fixed-crop run adds its first epoch's extra (recording, check) once."""
    costs, one_off = record["costs"]["median_s"], record["costs"]["one_off_s"]
    n = -(-int(record["args"]["fixed_crops"]) // int(record["args"]["batch_size"]))
    out = {}
    for name, run in record["runs"].items():
        if name == "full":
            out[name] = [(k, k * costs["full"], p) for k, _, p in run["curve"]]
            continue
        kind = "stage2:" + (
            "random" if "fixed" not in name else "fixed+cache" if "cache" in name else "fixed"
        )
        extra = max(0.0, one_off.get(f"{kind}:first_epoch", 0.0) - n * costs[kind])
        points = []
        for k, _, p in run["curve"]:
            search, tune = min(k, run["search_steps"]), max(0, k - run["search_steps"])
            points.append((k, search * costs["search"] + tune * costs[kind] + (extra if tune else 0.0), p))
        out[name] = points
    return out


def _summary(record: dict, curves: dict[str, list] | None = None) -> dict:
    """Per run: time to reach full fine-tuning's best and final PSNR, and each GAINS level, and ratios.
    ``curves``: {run: [(step, seconds, PSNR)]} on another clock (default: the measured wall time)."""
    curves = curves or {name: run["curve"] for name, run in record["runs"].items()}
    runs = {k: {**v, "curve": curves[k], "train_s": curves[k][-1][1]} for k, v in record["runs"].items()}
    record = {**record, "runs": runs}
    full = record["runs"]["full"]
    base = record["base_psnr"]
    best = max(p for _, _, p in full["curve"])
    final = full["curve"][-1][2]
    full_best_s = time_to(full["curve"], best)
    rows = {}
    for name, run in record["runs"].items():
        reach_best, reach_final = time_to(run["curve"], best), time_to(run["curve"], final)
        rows[name] = {
            "steps": run["steps"],
            "train_s": run["train_s"],
            "s_per_step": run["train_s"] / max(1, run["steps"]),
            "final_psnr": run["curve"][-1][2],
            "best_psnr": max(p for _, _, p in run["curve"]),
            "time_to_full_best_s": reach_best,
            # no ratio when full fine-tuning never beat its starting point (best at 0 s)
            "ratio_full_best": None if reach_best is None or not full_best_s else reach_best / full_best_s,
            "time_to_full_final_s": reach_final,
            "ratio_full_final": None if reach_final is None else reach_final / full["train_s"],
            "time_to_gain_s": {str(g): time_to(run["curve"], base + g) for g in GAINS},
            **{k: run[k] for k in ("search_s", "finetune_s", "search_steps", "selected") if k in run},
        }
    return {"base_psnr": base, "full_best_psnr": best, "full_final_psnr": final, "rows": rows}


def markdown(record: dict, key: str = "summary") -> str:
    """The README table of one run (``key``: "summary" = wall time, "modelled" = interleaved step costs)."""
    s = record[key]
    lines = [
        f"base {s['base_psnr']:.2f} dB; full FT best {s['full_best_psnr']:.2f}, "
        f"final {s['full_final_psnr']:.2f}",
        "",
        "| run | steps (search) | train s | s/step | best PSNR | final PSNR | to full's best (ratio) "
        "| to full's final (ratio) | " + " | ".join(f"to +{g} dB" for g in GAINS) + " |",
        "|---" * (8 + len(GAINS)) + "|",
    ]

    def t(x):
        return "never" if x is None else f"{x:.1f}"

    def r(x):
        return "" if x is None else f" ({x:.2f}x)"

    for name, row in s["rows"].items():
        steps = f"{row['steps']} ({row['search_steps']})" if "search_steps" in row else str(row["steps"])
        lines.append(
            f"| {name} | {steps} | {row['train_s']:.1f} | {row['s_per_step']:.2f} | {row['best_psnr']:.2f} "
            f"| {row['final_psnr']:.2f} | {t(row['time_to_full_best_s'])}{r(row['ratio_full_best'])} "
            f"| {t(row['time_to_full_final_s'])}{r(row['ratio_full_final'])} | "
            + " | ".join(t(row["time_to_gain_s"][str(g)]) for g in GAINS)
            + " |"
        )
    return "\n".join(lines)


def _add_costs(args) -> None:
    from adapt_speed_profile import interleaved_costs, profile_steps

    from dehazekit.adapt import AdaptConfig
    from dehazekit.adapt.backbone import load_backbone

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    records = [json.loads(p.read_text()) for p in args.costs_into]
    selected = records[0]["runs"]["lora"]["selected"]
    base = load_backbone(AdaptConfig(backbone="gunet-t", weights="synthetic"))
    task = load_task(args.task, args.side, (6, 3))
    data = _data(task, args)
    costs = interleaved_costs(base, data, args, selected, args.cost_rounds)
    costs.update(selected=selected, command=_command())
    log.info("interleaved step costs: %s", costs["median_s"])
    for path, record in zip(args.costs_into, records):
        record["costs"] = costs
        _write(path, record, args)
    if args.profile_steps == 0:
        return
    profile = profile_steps(base, data, args, selected, args.profile_steps)
    profile["command"] = _command()
    for path, record in zip(args.costs_into, records):
        record["profile"] = profile
        _write(path, record, args)


def _data(task, args):
    from dehazekit.adapt.data import UnpairedHazy
    from dehazekit.data.images import write_image

    with tempfile.TemporaryDirectory() as tmp:
        paths = [write_image(Path(tmp) / f"{i:03d}.png", img) for i, img in enumerate(task.adapt)]
        return UnpairedHazy(paths, size=args.size, seed=args.seed)


def _write(path: Path, record: dict, args) -> None:
    record["summary"] = _summary(record)
    if "costs" in record:
        record["modelled"] = _summary(record, modelled(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=float))


def _command() -> str:
    return "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/adapt_speed.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
