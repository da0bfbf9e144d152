"""The default-model adoption rule: a candidate must not lose PSNR anywhere and must move luma to GT."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from default_model_pick import pick  # noqa: E402


def _block(psnr: float, luma: float, gt_luma: float = 100.0, clip: float = 0.0) -> dict:
    out = {"psnr": psnr, "luma": luma, "clip_lo": clip, "clip_hi": 0.0}
    return {"mean": {"output": out, "gt": {"luma": gt_luma, "clip_lo": 0.0, "clip_hi": 0.0}}}


def _result(psnr: float, luma: float, clip: float = 0.0) -> dict:
    return {
        "ohaze": _block(psnr, luma, clip=clip),
        "crops": {"O-HAZE": _block(psnr - 3, luma), "NH": _block(psnr - 5, luma)},
        "synth": {"homogeneous": _block(psnr, 110.0)},
    }


def test_better_everywhere_is_picked_and_any_psnr_loss_or_clipping_rejects() -> None:
    bundled = _result(19.0, 85.0)
    good, brighter_but_worse = _result(19.5, 95.0), _result(18.9, 99.0)
    clipping = _result(19.5, 95.0, clip=0.02)
    synth_loss = copy.deepcopy(good)
    synth_loss["synth"]["homogeneous"]["mean"]["output"]["psnr"] = 18.0
    result = pick(bundled, {"good": good, "worse": brighter_but_worse, "clip": clipping, "synth": synth_loss})
    assert result["picked"] == "good"
    lower = ["ohaze_psnr lower", "crops_psnr lower", "synth_psnr lower"]
    assert result["candidates"]["worse"]["fails"] == lower
    assert result["candidates"]["clip"]["fails"] == ["clipping up"]
    assert result["candidates"]["synth"]["fails"] == ["synth_psnr lower"]
    assert pick(bundled, {"same": copy.deepcopy(bundled)})["picked"] is None  # luma must move to GT


def test_out_may_not_be_an_input(tmp_path: Path) -> None:
    bundled = tmp_path / "bundled.json"
    bundled.write_text(json.dumps(_result(19.0, 85.0)))
    before = bundled.read_text()
    run = subprocess.run(
        [sys.executable, str(BENCH / "default_model_pick.py"), "--bundled", str(bundled),
         "--candidates", str(bundled), "--out", str(bundled)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0 and "one of the inputs" in run.stderr
    assert bundled.read_text() == before
    agt = tmp_path / "agt.json"
    agt.write_text(json.dumps(_adapt_gt({"a": (17.0, 18.0)})))
    agt_before = agt.read_text()
    run = subprocess.run(
        [sys.executable, str(BENCH / "default_model_pick.py"), "--bundled", str(bundled),
         "--candidates", str(bundled), "--adapt-gt-bundled", str(agt), "--adapt-gt", str(agt),
         "--out", str(agt)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0 and "one of the inputs" in run.stderr
    assert agt.read_text() == agt_before


def _adapt_gt(rows: dict[str, tuple[float, float]]) -> dict:
    """An adapt_gt.py result: task -> (PSNR without adaptation, PSNR after the default adaptation)."""
    records = [
        {"task": t, "methods": {"none": [{"psnr": none}], "lora:offline": [{"psnr": adapted}]}}
        for t, (none, adapted) in rows.items()
    ]
    return {"records": records}


def test_with_adapt_gt_a_candidate_must_stay_good_after_adaptation() -> None:
    bundled, good = _result(19.0, 85.0), _result(19.5, 95.0)
    base_agt = _adapt_gt({"a": (17.0, 18.0), "b": (21.0, 21.5)})
    steady = _adapt_gt({"a": (17.5, 18.3), "b": (21.5, 21.6)})  # better before and after, gains both
    overshoots = _adapt_gt({"a": (18.0, 20.0), "b": (22.0, 20.0)})  # higher mean after, -2 dB on "b"
    worse_after = _adapt_gt({"a": (17.5, 17.6), "b": (21.5, 21.6)})
    cands = {"steady": good, "overshoots": copy.deepcopy(good), "worse_after": copy.deepcopy(good)}
    adapted = {"bundled": base_agt, "steady": steady, "overshoots": overshoots, "worse_after": worse_after}
    result = pick(bundled, cands, adapted)
    fails = {name: row["fails"] for name, row in result["candidates"].items()}
    assert fails == {
        "steady": [],
        "overshoots": ["adaptation harms more"],
        "worse_after": ["adapted_psnr lower"],
    }
    assert result["picked"] == "steady"
    assert pick(bundled, {"overshoots": good})["picked"] == "overshoots"  # without --adapt-gt: as before


def test_adapt_gt_is_judged_on_the_named_column() -> None:
    """``--adapt-method lora:offline@0.75`` judges the scaled adapter, not the whole one beside it."""
    bundled, good = _result(19.0, 85.0), _result(19.5, 95.0)
    base_agt = _adapt_gt({"a": (17.0, 18.0), "b": (21.0, 21.5)})
    cand_agt = _adapt_gt({"a": (18.0, 20.0), "b": (22.0, 20.0)})  # whole adapter: -2 dB on "b"
    for record, scaled in zip(cand_agt["records"], (19.0, 22.2)):
        record["methods"]["lora:offline@0.75"] = [{"psnr": scaled}]
    for record in base_agt["records"]:
        record["methods"]["lora:offline@0.75"] = record["methods"]["lora:offline"]
    adapted = {"bundled": base_agt, "cand": cand_agt}
    assert pick(bundled, {"cand": good}, adapted)["candidates"]["cand"]["fails"] == ["adaptation harms more"]
    assert pick(bundled, {"cand": good}, adapted, "lora:offline@0.75")["picked"] == "cand"
