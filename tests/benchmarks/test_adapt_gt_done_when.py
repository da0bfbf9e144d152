"""Issue 17's done-when counted per seed (benchmarks/adapt_gt_done_when.py) on made-up rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_done_when import losses, pick_bound_first, violations  # noqa: E402

FAMILIES = ("O-HAZE", "I-HAZE", "Dense-HAZE", "NH-HAZE-2020")
SYNTH = ("patchy", "dust", "dense", "depth")


def _rows(**changes: float) -> list[dict]:
    """Every row gains 0.2 dB at strength 0.5, except the tasks given (name with '_' for ':')."""
    tasks = ["ohaze:eval27", "ohaze:eval35", "ohaze:transductive", "bedde:chengdu"]
    tasks += [f"crops:{f}:fold{k}" for f in FAMILIES for k in (0, 1)] + [f"synth:{d}" for d in SYNTH]
    delta = {t: 0.2 for t in tasks}
    delta.update({k.replace("__", "-").replace("_", ":"): v for k, v in changes.items()})
    return [{"task": t, "delta_psnr": {"lora:offline@0.5": d}} for t, d in delta.items()]


def test_a_seed_that_meets_everything_has_no_violation() -> None:
    assert violations(_rows(bedde_chengdu=-3.0, ohaze_transductive=-1.0), 0.5) == []


def test_each_item_and_each_loss_above_the_bound_counts() -> None:
    rows = _rows(
        ohaze_eval35=-0.13,  # does not gain, and loses more than 0.1 dB: two violations
        **{"crops_O__HAZE_fold0": -0.3, "crops_I__HAZE_fold0": -0.5},  # two families' means below 0
        synth_dense=-0.05,  # a synthetic domain not gaining, within the bound: 3 of 4 still gain
    )
    assert violations(rows, 0.5) == [
        "ohaze:eval35 does not gain",
        "fewer than 3 crop families gain",
        "ohaze:eval35 loses -0.13 dB",
        "crops:O-HAZE:fold0 loses -0.30 dB",
        "crops:I-HAZE:fold0 loses -0.50 dB",
    ]


def test_ohaze_read_as_one_leave_one_out_family_gains_on_the_mean_of_its_folds() -> None:
    one_fold_down = _rows(ohaze_eval35=-0.05, ohaze_eval27=0.3)  # mean +0.125: the family gains
    assert violations(one_fold_down, 0.5, ohaze_as_family=True) == []
    assert violations(one_fold_down, 0.5) == ["ohaze:eval35 does not gain"]
    both_down = _rows(ohaze_eval35=-0.05, ohaze_eval27=0.04)  # mean -0.005
    assert violations(both_down, 0.5, ohaze_as_family=True) == ["O-HAZE 27/35 leave-one-out does not gain"]
    # a fold beyond the bound still counts as a loss, whatever the family's mean
    beyond = _rows(ohaze_eval35=-0.15, ohaze_eval27=0.9)
    assert violations(beyond, 0.5, ohaze_as_family=True) == ["ohaze:eval35 loses -0.15 dB"]


def test_mean_luma_over_the_rows_must_be_within_ten_percent_of_gt() -> None:
    rows = _rows()
    for r in rows:
        r["means"] = {"none": {"gt_luma": 100.0}, "lora:offline@0.5": {"luma": 91.0}}
    assert violations(rows, 0.5) == []
    rows[0]["means"]["lora:offline@0.5"]["luma"] = 91.0 - 16 * 1.5  # the mean drops to 89.5
    assert violations(rows, 0.5) == ["mean luma not within 10% of GT's"]


def test_losses_count_only_done_when_runs_beyond_the_bound() -> None:
    rows = _rows(bedde_chengdu=-3.0, ohaze_transductive=-1.0, ohaze_eval35=-0.11, synth_dust=-0.1)
    assert losses(rows, 0.5) == 1  # -0.10 is within the bound; BeDDE and transductive are not done-when


def test_bound_first_pick_puts_losses_before_violations_and_gain() -> None:
    totals = {
        "0.5": {"losses": 0, "violations": 3, "mean_dpsnr": 0.30},
        "0.75": {"losses": 1, "violations": 1, "mean_dpsnr": 0.45},
    }
    assert pick_bound_first(totals) == "0.5"
    totals["0.75"]["losses"] = 0
    assert pick_bound_first(totals) == "0.75"  # fewer violations
    totals["0.75"]["violations"] = 3
    assert pick_bound_first(totals) == "0.75"  # same counts: the higher mean gain
    totals["0.5"]["mean_dpsnr"] = 0.5
    assert pick_bound_first(totals) == "0.5"


def test_seeds_filter_still_refuses_to_overwrite_any_seed_file(tmp_path, monkeypatch) -> None:
    import json

    import adapt_gt_done_when
    import adapt_gt_seeds

    for seed in (15, 16):
        (tmp_path / f"adapt_gt_strength_seed{seed}.json").write_text(json.dumps({"summary": _rows()}))
    monkeypatch.setattr(adapt_gt_seeds, "RESULTS", tmp_path)
    target = tmp_path / "adapt_gt_strength_seed16"
    argv = ["x", "--strengths", "0.5", "--seeds", "15", "--out", str(target)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="would overwrite the input"):
        adapt_gt_done_when.main()
    assert json.loads(target.with_suffix(".json").read_text()) == {"summary": _rows()}
