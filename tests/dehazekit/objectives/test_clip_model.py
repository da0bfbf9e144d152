"""CLIP loading: local configs and checkpoints, fast offline failure (for real, no mocks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from dehazekit.objectives import clip_model
from dehazekit.objectives.clip_model import load_clip
from dehazekit.runtimes.errors import ModelFileError, OfflineError, UnknownNameError
from tests.dehazekit.objectives.conftest import TINY_CLIP


def _assert_offline_message(exc: OfflineError) -> None:
    text = str(exc)
    assert "--clip-weights" in text and "--objective offline" in text


# Separates failing from hanging in download retries (minutes), not a speed claim: on a loaded 2-core
# machine the import alone took 17 s, so a tight bound only measured the load.
HANG_S = 60


def test_offline_flag_fails_fast(empty_caches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        load_clip("ViT-B-32", "openai")
    assert time.monotonic() - start < HANG_S
    _assert_offline_message(info.value)


def test_unreachable_network_fails_fast(empty_caches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A non-routable address: the real HTTPS probe runs and gives up instead of hanging in retries.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_model, "_PROBE_URL", "https://10.255.255.1:9/")
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        load_clip("RN50", "openai")
    assert time.monotonic() - start < HANG_S
    _assert_offline_message(info.value)


def test_local_checkpoint_round_trip(tmp_path: Path) -> None:
    model, _ = load_clip(str(TINY_CLIP), None)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    loaded, tokenizer = load_clip(str(TINY_CLIP), weights=path)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not loaded.training and all(not p.requires_grad for p in loaded.parameters())
    assert tokenizer(["a clear photo"]).shape[-1] == 77


def test_bad_names_and_paths(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError):
        load_clip("ViT-B-33", "openai")
    with pytest.raises(UnknownNameError):
        load_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(ModelFileError):
        load_clip(str(TINY_CLIP), weights=tmp_path / "missing.pt")
    with pytest.raises(ModelFileError):
        load_clip(str(tmp_path / "missing.json"), None)
