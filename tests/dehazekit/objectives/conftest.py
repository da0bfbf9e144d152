"""Tiny open_clip model (random weights, 32 px) shared by the objective tests: never a download."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CLIP = Path(__file__).resolve().parents[2] / "data" / "tiny_clip.json"


@pytest.fixture()
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Point every cache open_clip / huggingface_hub could read at an empty folder.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


@pytest.fixture(scope="module")
def tiny_h2c():
    from dehazekit.objectives.h2c import make_h2c

    return make_h2c(clip=str(TINY_CLIP), pretrained=None)
