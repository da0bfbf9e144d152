"""The per-frame airlight gate replay (benchmarks/adapt_gt_airlight_gate.py) on made-up records."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_airlight_gate import seed_summary  # noqa: E402

COLUMN = "lora:offline@0.75"


def _record(task: str, images: dict[str, tuple[float, float, float, float]]) -> dict:
    """images: name -> (psnr none, psnr adapted, luma adapted, gt luma); the base's luma is 0.8 x GT."""
    return {
        "task": task,
        "methods": {
            "none": [
                {"image": i, "psnr": n, "luma": 0.8 * g, "gt_luma": g} for i, (n, _, _, g) in images.items()
            ],
            COLUMN: [
                {"image": i, "psnr": a, "luma": la, "gt_luma": g} for i, (_, a, la, g) in images.items()
            ],
        },
    }


def test_the_adapter_runs_only_below_tau_and_bedde_is_not_a_done_when_row() -> None:
    records = [
        # dim airlight image gains, bright one loses: the gate keeps the gain and drops the loss
        _record(
            "crops:O-HAZE:fold0", {"dim": (15.0, 16.0, 100.0, 100.0), "bright": (20.0, 19.0, 100.0, 100.0)}
        ),
        _record("bedde:chengdu", {"day": (16.0, 14.0, 120.0, 100.0)}),
    ]
    airlight = {
        ("crops:O-HAZE:fold0", "dim"): 0.6,
        ("crops:O-HAZE:fold0", "bright"): 0.9,
        ("bedde:chengdu", "day"): 0.85,
    }
    ungated = seed_summary(records, COLUMN, airlight, None)
    gated = seed_summary(records, COLUMN, airlight, 0.8)
    assert ungated == {"mean_dpsnr": (0.0 - 2.0) / 2, "luma_within": 1, "worst_done_when": 0.0, "bedde": -2.0}
    # O-HAZE: +0.5 dB (dim adapted, bright base); luma (100 + 80) / 2 = 90 vs 100 is within 10%
    assert gated == {"mean_dpsnr": (0.5 + 0.0) / 2, "luma_within": 1, "worst_done_when": 0.5, "bedde": 0.0}
