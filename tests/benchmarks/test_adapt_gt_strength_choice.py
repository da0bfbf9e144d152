"""Per-row strength replay (benchmarks/adapt_gt_strength_choice.py) and the label-pull probe
(benchmarks/adapt_gt_label_signal.py) on small made-up inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_strength_choice import seed_summary  # noqa: E402


def _row(task: str, scores: dict[float, tuple[float, float]], gt_luma: float = 100.0) -> dict:
    """scores: strength -> (dPSNR, luma)."""
    column = {s: "lora:offline" if s == 1.0 else f"lora:offline@{s:g}" for s in scores}
    means = {column[s]: {"luma": luma} for s, (_, luma) in scores.items()}
    means["none"] = {"gt_luma": gt_luma}
    return {"task": task, "delta_psnr": {column[s]: d for s, (d, _) in scores.items()}, "means": means}


def test_each_pick_uses_its_own_strength_and_any_strength_counts_luma() -> None:
    rows = [
        # too dark at 0.75, right at 1, best PSNR at 1; the pull asks for full strength
        _row("ohaze:eval27", {0.5: (0.2, 80.0), 0.75: (0.5, 85.0), 1.0: (0.8, 95.0)}),
        # right at 0.5 only, best PSNR at 0.5; the pull asks for little
        _row("synth:dense", {0.5: (0.3, 105.0), 0.75: (0.1, 115.0), 1.0: (-0.2, 125.0)}),
        # a transductive row: not a done-when row, so not in the worst
        _row("bedde:chengdu", {0.5: (-1.0, 60.0), 0.75: (-2.0, 60.0), 1.0: (-3.0, 60.0)}),
        # right at 0.75 only; a pull of 1.15 asks for 0.75
        _row("crops:I-HAZE:fold0", {0.5: (0.0, 80.0), 0.75: (0.05, 95.0), 1.0: (0.1, 120.0)}),
    ]
    pull = {"ohaze:eval27": 1.3, "synth:dense": 1.02, "bedde:chengdu": 1.1, "crops:I-HAZE:fold0": 1.15}
    out = seed_summary(rows, pull)
    assert out["strengths"] == [0.5, 0.75, 1.0]
    assert out["fixed"]["luma_within"] == 1 and out["fixed"]["worst_done_when"] == 0.05
    assert abs(out["fixed"]["mean_dpsnr"] - (0.5 + 0.1 - 2.0 + 0.05) / 4) < 1e-12
    # pull: 1.3 -> 1, 1.02 -> 0.5 (clipped up), 1.1 -> 0.5, 1.15 -> 0.75
    assert out["pull"]["luma_within"] == 3
    assert abs(out["pull"]["mean_dpsnr"] - (0.8 + 0.3 - 1.0 + 0.05) / 4) < 1e-12
    assert out["oracle"]["worst_done_when"] == 0.1
    assert out["luma_within_any"] == 3


def test_label_signal_reports_a_pull_per_label_and_what_gt_asks() -> None:
    import torch
    from adapt_gt_label_signal import task_row
    from adapt_gt_tasks import Task

    from dehazekit.models import load_model

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    hazy = [(0.55 + 0.35 * rng.random((32, 32, 3))).astype(np.float32) for _ in range(2)]
    task = Task("t", "fam", "disjoint", hazy, hazy, [("e", hazy[0], hazy[1])])
    row = task_row(load_model(None, backbone="gunet-t").eval(), task, label_airlight=0.825, draws=1)
    assert row["task"] == "t" and set(row) == {"task", "gt_asks", "offline_pull", "airswap_pull"}
    assert all(0.2 < row[k] < 5 for k in ("gt_asks", "offline_pull", "airswap_pull"))
