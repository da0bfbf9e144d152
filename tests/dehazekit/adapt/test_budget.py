"""--time-budget: step counts from a measured probe; the probe leaves the real run untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dehazekit.adapt import AdaptConfig, adapt
from dehazekit.adapt.budget import Estimate, plan, probe, refit_finetune
from dehazekit.runtimes.errors import ConfigError


def test_plan_keeps_the_default_stage_ratio() -> None:
    config = AdaptConfig(backbone="tiny-gunet", time_budget="100s")
    planned = plan(config, {"search": 1.0, "finetune": 0.5}, 100.0)
    ratio = AdaptConfig().finetune_steps / AdaptConfig().search_steps
    assert planned.search_steps == 50 and planned.finetune_steps == int(50 * ratio)
    with pytest.raises(ConfigError, match="too short"):
        plan(config, {"search": 1.0, "finetune": 0.5}, 5.0)


def test_finetune_absorbs_a_slower_search() -> None:
    config = AdaptConfig(backbone="tiny-gunet", time_budget="100s", search_steps=20, finetune_steps=40)
    probed = Estimate({"search": 1.0, "finetune": 1.0}, {"search": 20, "finetune": 40})
    # the search took 2 s/step instead of 1: 40 s used by it, 60 s left at 2 s per fine-tune step -> 30
    assert refit_finetune(config, probed, search_s=40.0, elapsed_s=40.0).finetune_steps == 30
    # on schedule: the plan stands (never more steps than planned)
    assert refit_finetune(config, probed, search_s=20.0, elapsed_s=20.0).finetune_steps == 40
    assert refit_finetune(AdaptConfig(backbone="tiny-gunet"), probed, 40.0, 40.0).finetune_steps == 600


def test_budget_and_resume_do_not_mix() -> None:
    with pytest.raises(ConfigError, match="cannot resume"):
        AdaptConfig(backbone="tiny-gunet", time_budget="10m", resume=True)
    with pytest.raises(ConfigError, match="time-budget"):
        AdaptConfig(backbone="tiny-gunet", time_budget="ten minutes")


def test_probe_restores_rng(hazy_dir: Path) -> None:
    from dehazekit.adapt.api import _setup
    from dehazekit.lora import inject_lora

    config = AdaptConfig(backbone="tiny-gunet", weights="random", objective="dcp", size=32, batch_size=2)
    data, model, candidates, objective = _setup(hazy_dir, config, None)
    inject_lora(model, candidates, rank=2, gated=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = probe(model, objective, data, config)
    assert seconds["search"] > 0 and seconds["finetune"] > 0
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # probed a copy


@pytest.mark.slow  # fills its 20 s budget by design
def test_time_budget_picks_step_counts(hazy_dir: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level("INFO"):
        result = adapt(
            hazy_dir,
            "tiny-gunet",
            weights="random",
            objective="dcp",
            size=32,
            batch_size=2,
            time_budget="20s",
            checkpoint_every=0,
            out=str(tmp_path / "out"),
        )
    config = json.loads((result.out_dir / "report" / "summary.json").read_text())["config"]
    assert config["search_steps"] != AdaptConfig().search_steps and config["search_steps"] >= 5
    # planned 1:2; the fine-tune may shrink when the search ran slower than probed (busy machine)
    assert 1 <= config["finetune_steps"] <= 2 * config["search_steps"]
    assert len(result.losses["search"]) == config["search_steps"]
    assert len(result.losses["finetune"]) == config["finetune_steps"]
    assert "estimated adaptation time" in caplog.text and "fitted to --time-budget 0:20" in caplog.text
