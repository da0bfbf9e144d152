"""Shared by the replays that read the strength seeds' results (``results/adapt_gt_strength_seed*.json``):
which rows the done-when names, the column of a strength, the luma criterion, and safe outputs."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# O-HAZE leave-one-out, the crop folds and the synthetic domains are issue 17's done-when rows
NOT_DONE_WHEN = ("bedde", "ohaze:transductive")
BOUND_DB = 0.1  # "never loses more than 0.1 dB"
LUMA_SHARE = 0.1  # "mean luma within 10% of GT's"


def strength_column(strength: float) -> str:
    """adapt_gt's method column for the shipped adapter scaled to ``strength`` (``interp``)."""
    return "lora:offline" if strength == 1.0 else f"lora:offline@{strength:g}"


def luma_close(luma: float, gt_luma: float) -> bool:
    return bool(abs(luma - gt_luma) <= LUMA_SHARE * gt_luma)


def seed_of(path: Path) -> int:
    """The seed in a strength seed's file name (``adapt_gt_strength_seed12.json`` -> 12)."""
    return int(path.stem.rsplit("seed", 1)[1])


def strength_seed_files() -> list[Path]:
    """The strength seeds' result files, in seed order (10 after 9)."""
    return sorted(RESULTS.glob("adapt_gt_strength_seed*.json"), key=seed_of)


def write_replay(out: Path, data: dict, text: str, inputs: list[Path]) -> None:
    """``out``.json and ``out``.md; refuses to write over any input."""
    targets = {out.with_suffix(".json").resolve(), out.with_suffix(".md").resolve()}
    clash = targets & {p.resolve() for p in inputs}
    if clash:
        raise SystemExit(f"--out {out} would overwrite the input {sorted(clash)[0]}; choose another name")
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    out.with_suffix(".md").write_text(text)
