"""Helpers shared by the strength-seed replays (benchmarks/adapt_gt_seeds.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_seeds import luma_close, strength_column, write_replay  # noqa: E402


def test_replay_outputs_never_overwrite_an_input(tmp_path: Path) -> None:
    seed = tmp_path / "adapt_gt_strength_seed3.json"
    seed.write_text('{"summary": []}')
    with pytest.raises(SystemExit, match="would overwrite the input"):
        write_replay(tmp_path / "adapt_gt_strength_seed3", {}, "x", [seed])
    assert seed.read_text() == '{"summary": []}'
    write_replay(tmp_path / "replay", {"a": 1}, "table\n", [seed])
    assert json.loads((tmp_path / "replay.json").read_text()) == {"a": 1}
    assert (tmp_path / "replay.md").read_text() == "table\n"


def test_luma_counts_serialise_and_columns_name_the_strength() -> None:
    # numpy means in, a plain bool out: a count of them must go into the JSON
    count = sum(luma_close(np.float64(x), np.float64(100.0)) for x in (90.0, 110.0, 89.0))
    assert json.dumps({"n": count}) == '{"n": 2}'
    assert strength_column(1.0) == "lora:offline" and strength_column(0.75) == "lora:offline@0.75"
