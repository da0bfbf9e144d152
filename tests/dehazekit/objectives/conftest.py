"""Tiny open_clip model (random weights, 32 px) shared by the objective tests: never a download."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CLIP = Path(__file__).resolve().parents[2] / "data" / "tiny_clip.json"


@pytest.fixture(scope="module")
def tiny_h2c():
    from dehazekit.objectives.h2c import make_h2c

    return make_h2c(clip=str(TINY_CLIP), pretrained=None)
