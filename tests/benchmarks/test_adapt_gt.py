"""benchmarks/adapt_gt.py: the guard bookkeeping of its report, and the script end to end on real pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_report import guard_table, summarise  # noqa: E402
from adapt_gt_tasks import DATA  # noqa: E402

needs_data = pytest.mark.skipif(not (DATA / "paired_real" / "ohaze").is_dir(), reason="needs ../shared/data")


def _rows(psnr: float) -> list[dict]:
    return [
        {
            "psnr": psnr,
            "ssim": 0.5,
            "psnr_gain": psnr,
            "ssim_gain": 0.5,
            "luma": 90.0,
            "gt_luma": 100.0,
            "clipped": 0.0,
            "colour": 20.0,
        }
    ]


def _guard(recommended: bool, chosen: int | None, last: int) -> dict:
    checks = [
        {"step": s, "failures": [] if (chosen is not None and s <= chosen) else ["darker"]}
        for s in range(0, last + 1, 4)
    ]
    return {"recommended": recommended, "chosen_step": chosen, "checks": checks, "holdout": "x"}


def test_guard_table_counts_harm_stopped_and_good_kept() -> None:
    records = [
        {
            "task": "a",
            "family": "f",
            "protocol": "disjoint",
            "n_adapt": 2,
            "n_eval": 1,
            "methods": {
                "none": _rows(17.0),
                "lora:x": _rows(17.5),
                "lora:x:last": _rows(17.5),
                "lora:y": _rows(17.0),
                "lora:y:last": _rows(15.0),
            },
            "guard": {"lora:x": _guard(True, 12, 12), "lora:y": _guard(False, None, 12)},
        },
        {
            "task": "b",
            "family": "f",
            "protocol": "disjoint",
            "n_adapt": 2,
            "n_eval": 1,
            "methods": {"none": _rows(17.0), "lora:x": _rows(16.5), "lora:x:last": _rows(16.0)},
            "guard": {"lora:x": _guard(True, 4, 12)},
        },
    ]
    text = "\n".join(guard_table(summarise(records)))
    assert "2 stopped by the guard, 0 shipped" in text and "1 kept" in text
    assert "loses more than 0.1 dB in 1 of 3 runs" in text
    assert "| b | lora:x | -1.00 | ships earlier step | -0.50 | darker |" in text


@needs_data
@pytest.mark.slow  # about 20 s on a quiet machine, minutes on the shared one
def test_script_writes_json_markdown_and_contact_sheet(tmp_path: Path) -> None:
    out = tmp_path / "gt"
    cmd = [
        sys.executable,
        str(BENCH / "adapt_gt.py"),
        "--quick",
        "--only",
        "ohaze:eval27",
        "--no-fade",
        "--methods",
        "lora:offline",
        "l1",
        "--out",
        str(out),
        "--set",
        "search=1",
        "finetune=2",
        "side=96",
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.with_suffix(".json").read_text())
    (task,) = data["summary"]
    assert task["task"] == "ohaze:eval27" and task["n_eval"] == 1
    assert set(task["means"]) == {"none", "lora:offline", "lora:offline:last", "l1"}
    assert np.isfinite(task["delta_psnr"]["l1"]) and task["guard"]["lora:offline"]["holdout"]
    md = out.with_suffix(".md").read_text()
    assert "## Guard" in md and "| ohaze:eval27 | none |" in md
    assert out.with_suffix(".png").stat().st_size > 1000


@needs_data
@pytest.mark.slow
def test_quick_mode_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "adapt_gt.py"), "--quick", "--out", str(tmp_path / "q")],
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "q.json").read_text())["summary"]
    assert {s["task"] for s in summary} == {"synth:patchy", "ohaze:eval27", "crops:O-HAZE:fold0"}


def test_the_benchmark_adapts_the_model_adapt_starts_from() -> None:
    """Every adapt_gt number is about `adapt --weights synthetic`, not the recalibrated default."""
    from adapt_gt import base_weights

    from dehazekit.catalog import WEIGHTS_SYNTHETIC, bundled_model_dir

    assert base_weights({"model": None}) == bundled_model_dir(WEIGHTS_SYNTHETIC)
    assert base_weights({"model": "/m"}) == Path("/m")
