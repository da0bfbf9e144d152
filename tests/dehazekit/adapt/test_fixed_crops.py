"""adapt(fixed_crops=N): Stage 2 on a fixed crop set with the frozen prefix replayed gives the same model
as the full network on the same crops, reports its cache, and resumes onto the same crop set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dehazekit.adapt import adapt
from dehazekit.bilevel import PrefixCache
from tests.dehazekit.adapt.test_adapt import BACKBONE, _config, _Interrupt, _stop_at


def _fixed(out: Path, **changes):
    return _config(out, objective="offline", fixed_crops=4, finetune_steps=4, **changes)


def _same_model(a: Path, b: Path, atol: float) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], atol=atol, rtol=0) for k in x)


def test_replayed_prefix_gives_the_same_adapted_model(
    hazy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = adapt(hazy_dir, BACKBONE, _fixed(tmp_path / "cached", checkpoint_every=0))
    summary = json.loads((tmp_path / "cached" / "report" / "summary.json").read_text())
    cache = summary["prefix_cache"]
    assert cache["enabled"] and cache["replayed"] >= 2 and cache["batches"] == 2
    with monkeypatch.context() as patch:  # the reference: same fixed crops, full network every step
        patch.setattr(PrefixCache, "_verify", lambda self, index: self._disable("test reference"))
        full = adapt(hazy_dir, BACKBONE, _fixed(tmp_path / "full", checkpoint_every=0))
    assert full.selected_blocks == cached.selected_blocks
    assert _same_model(tmp_path / "cached", tmp_path / "full", atol=1e-6)
    losses = [h["loss"] for h in cached.losses["finetune"]]
    assert losses == pytest.approx([h["loss"] for h in full.losses["finetune"]], abs=1e-6)


def test_resumed_fine_tune_keeps_the_same_fixed_crops(hazy_dir: Path, tmp_path: Path) -> None:
    full = adapt(hazy_dir, BACKBONE, _fixed(tmp_path / "full"))
    with pytest.raises(_Interrupt):
        adapt(hazy_dir, BACKBONE, _fixed(tmp_path / "cut"), progress=_stop_at("finetune", 3))
    resumed = adapt(hazy_dir, BACKBONE, _fixed(tmp_path / "cut", resume=True))
    assert resumed.resumed_from == {"stage": "finetune", "step": 2}
    assert [h["loss"] for h in resumed.losses["finetune"]] == [h["loss"] for h in full.losses["finetune"]]
    assert _same_model(tmp_path / "full", tmp_path / "cut", atol=1e-7)


def test_h2c_embeds_each_fixed_crop_once(
    hazy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dehazekit.objectives.h2c import H2CObjective
    from tests.dehazekit.objectives.conftest import TINY_CLIP

    inputs = []  # every CLIP embedding of an input batch (misses of the memo)
    real = H2CObjective.image_features

    def spy(self, image):
        inputs.append(image.shape[0])
        return real(self, image)

    monkeypatch.setattr(H2CObjective, "image_features", spy)
    config = _config(
        tmp_path / "out",
        objective="h2c",
        clip=str(TINY_CLIP),
        clip_pretrained="none",
        fixed_crops=4,
        search_steps=1,
        finetune_steps=6,
        checkpoint_every=0,
        guard=False,
    )
    adapt(hazy_dir, BACKBONE, config)
    # search: 1 step = 2 objective calls (2 input + 2 output embeddings); fine-tune: 6 steps on
    # 2 fixed batches = 6 output embeddings + 2 input embeddings (one per fixed batch, not 6)
    assert len(inputs) == 2 * 2 + 6 + 2
