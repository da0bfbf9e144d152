"""adapt() wiring: the configured method and learning rates reach the real optimisers, and the selection is
the top-K of the gates it reports. Spies subclass the real search/tuner (they only record the instance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dehazekit import bilevel
from dehazekit.adapt import AdaptConfig, adapt
from dehazekit.bilevel import rank_blocks


@pytest.fixture()
def spies(monkeypatch: pytest.MonkeyPatch) -> dict:
    made: dict = {}

    class SearchSpy(bilevel.BilevelSearch):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made["search"] = self

    class TunerSpy(bilevel.FineTuner):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made["tuner"] = self

    monkeypatch.setattr(bilevel, "BilevelSearch", SearchSpy)
    monkeypatch.setattr(bilevel, "FineTuner", TunerSpy)
    return made


@pytest.mark.parametrize("method", ["cg", "first-order"])
def test_method_and_rates_reach_the_optimisers(
    hazy_dir: Path, tmp_path: Path, spies: dict, method: str
) -> None:
    config = AdaptConfig(
        objective="dcp",
        weights="random",
        search_steps=2,
        finetune_steps=1,
        batch_size=2,
        size=32,
        checkpoint_every=0,
        preview_count=1,
        out=str(tmp_path / "out"),
        hypergrad=method,
        lr_w=2.5e-3,
        lr_alpha=4.5e-2,
        top_k=2,
    )
    result = adapt(hazy_dir, "tiny-gunet", config)
    search, tuner = spies["search"], spies["tuner"]
    assert search.config.hypergrad == method and search.step_count == 2
    assert search.opt_alpha.param_groups[0]["lr"] == 4.5e-2
    assert search.opt_w.param_groups[0]["lr"] == 2.5e-3
    assert tuner.opt.param_groups[0]["lr"] == 2.5e-3 and tuner.step_count == 1
    # the reported gates are the searched ones, and the selection is their top-K
    assert result.gates == pytest.approx(search.gate_values())
    assert result.selected_blocks == rank_blocks(result.gates)[:2] == tuner.selected
