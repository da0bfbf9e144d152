"""Does a soup of two independently seeded adaptations cut the rare losses beyond 0.1 dB? (issue 17)

A uniform model soup (Wortsman et al., ICML 2022: average the weights of fine-tunes of one start) of
two `dehazekit adapt --objective offline` runs that differ only in their seed, scaled towards the base
like the shipped adapter (``adapt_gt.interpolate``). One adapt_gt task, seeds run one after another;
soups pair them in the order given (first two, next two, ...). Each run costs what one `adapt` costs,
so a soup doubles the adaptation time.

    OMP_NUM_THREADS=1 python benchmarks/adapt_gt_soup.py --task crops:O-HAZE:fold0 \
        --seeds 7 8 0 1 2 3 4 5 6 9 --out benchmarks/results/adapt_gt_soup_crops_ohaze_fold0

Writes OUT.json (every run and soup) and OUT.md (mean / worst / count beyond the 0.1 dB bound).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt_gt  # noqa: E402
from adapt_gt_seeds import BOUND_DB, strength_seed_files, write_replay  # noqa: E402

STRENGTHS = (0.5, 0.75, 1.0)


def average_weights(models: list[torch.nn.Module]) -> torch.nn.Module:
    """A copy of the first model holding the mean of every floating-point weight (the uniform soup)."""
    import copy

    states = [m.state_dict() for m in models]
    mean = {
        k: sum(s[k] for s in states) / len(states) if v.is_floating_point() else v
        for k, v in states[0].items()
    }
    soup = copy.deepcopy(models[0])
    soup.load_state_dict(mean)
    return soup


def run(task_name: str, seeds: list[int]) -> dict:
    from dehazekit.models import load_model

    mode = {**adapt_gt.MODES["default"], "model": None, "adapt_overrides": {"strength": 1.0}}
    task = next(t for t in adapt_gt.build_tasks(mode, [task_name]) if t.name == task_name)
    base = load_model(adapt_gt.base_weights(mode), backbone="gunet-t")

    def mean_psnr(model: torch.nn.Module) -> float:
        return float(np.mean([r["psnr"] for r in adapt_gt.evaluate(model, task, None)]))

    none = mean_psnr(base)

    def gain(model: torch.nn.Module) -> float:
        return mean_psnr(model) - none

    shipped, result = {}, {"task": task_name, "none_psnr": none, "single": {}, "soup": {}}
    for seed in seeds:
        shipped[seed] = adapt_gt.run_lora(task, "offline", mode, seed)["shipped"] or base
        result["single"][str(seed)] = {
            str(a): gain(adapt_gt.interpolate(base, shipped[seed], a)) for a in STRENGTHS
        }
        logging.info("%s seed %d: %s", task_name, seed, result["single"][str(seed)])
    for first, second in zip(seeds[::2], seeds[1::2]):
        soup = average_weights([shipped[first], shipped[second]])
        result["soup"][f"{first}+{second}"] = {
            str(a): gain(adapt_gt.interpolate(base, soup, a)) for a in STRENGTHS
        }
    return result


def summary_table(result: dict) -> str:
    """Per strength: mean, worst and count beyond the bound of the single runs and of the soups."""

    def cell(gains: list[float]) -> str:
        beyond = sum(g < -BOUND_DB for g in gains)
        return f"{np.mean(gains):+.3f} / {min(gains):+.2f} / {beyond} of {len(gains)}"

    lines = [
        f"{result['task']}: dPSNR vs no adaptation; mean / worst / beyond {BOUND_DB} dB",
        "",
        "| strength | single runs | soups of two |",
        "|---|---|---|",
    ]
    for a in STRENGTHS:
        single = [g[str(a)] for g in result["single"].values()]
        soups = [g[str(a)] for g in result["soup"].values()]
        lines.append(f"| {a:g} | {cell(single)} | {cell(soups)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, help="an adapt_gt task name, e.g. ohaze:eval35")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dehazekit").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    result = run(args.task, args.seeds)
    result["command"] = "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/adapt_gt_soup.py", *sys.argv[1:]])
    table = summary_table(result)
    write_replay(args.out, result, table, strength_seed_files())
    print(table)


if __name__ == "__main__":
    main()
