"""One source of configuration: `dehazekit adapt`'s options are AdaptConfig's fields, objectives route
their own options, and a default has one value everywhere."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import typer

from dehazekit.adapt.config import AdaptConfig
from dehazekit.cli.adapt_cmd import make_config
from dehazekit.cli.main import app
from dehazekit.runtimes.errors import ConfigError


def _adapt_command():
    group = typer.main.get_command(app)
    return group.get_command(None, "adapt")  # type: ignore[arg-type]


def test_every_config_field_is_an_option_with_the_config_default() -> None:
    options = {p.name: p for p in _adapt_command().params}
    for f in dataclasses.fields(AdaptConfig):
        if not f.metadata.get("cli", True):
            continue
        assert f.name in options, f"AdaptConfig.{f.name} has no --{f.name.replace('_', '-')} option"
        param = options[f.name]
        assert f"--{f.name.replace('_', '-')}" in param.opts
        if f.name != "backbone":  # required on the CLI
            assert param.default == f.default, f.name
        assert param.help == f.metadata["help"]


def test_unset_options_keep_config_defaults() -> None:
    assert make_config({"backbone": "gunet"}) == AdaptConfig(backbone="gunet-t")
    config = make_config(
        {"backbone": "dea", "gate_threshold": 0.4, "clip_pretrained": "none", "prompt": ["fog|clear"]}
    )
    assert config.top_k is None and config.clip_pretrained is None and config.prompts == [("fog", "clear")]


def test_objective_factory_defaults_equal_config_defaults() -> None:
    from dehazekit.objectives.base import _OBJECTIVES, objective_option_fields

    defaults = {f.name: f.default for f in dataclasses.fields(AdaptConfig)}
    for name in _OBJECTIVES:
        signature = inspect.signature(_OBJECTIVES[name])
        for keyword, field_name in objective_option_fields(name).items():
            assert field_name in defaults, f"{name}: option {keyword} -> unknown AdaptConfig.{field_name}"
            default = signature.parameters[keyword].default
            assert default == defaults[field_name], (
                f"{name}.{keyword}: {default!r} vs {defaults[field_name]!r}"
            )


def test_objective_options_are_routed_by_registration() -> None:
    config = AdaptConfig(backbone="gunet-t", objective="0.5*h2c+dcp", clip="RN50", clip_weights="w.pt")
    options = config.objective_options()
    assert options["h2c"]["clip"] == "RN50" and options["h2c"]["weights"] == "w.pt"
    assert options["dcp"] == {}


def test_unset_schedule_comes_from_the_objective_and_set_values_win() -> None:
    from dehazekit.adapt.config import SCHEDULES

    h2c, free, self_label = SCHEDULES["h2c"], SCHEDULES["clip-free"], SCHEDULES["self-label"]
    assert len({h2c, free, self_label}) == 3
    cases = (
        ("h2c", "base", h2c),
        ("0.5*h2c+offline", "self", h2c),
        ("offline", "base", free),
        ("dcp", "self", free),  # the label option only matters to rehaze/offline
        ("offline", "self", self_label),
        ("rehaze+dcp", "self", self_label),
    )
    for objective, teacher, expected in cases:
        config = AdaptConfig(backbone="gunet-t", objective=objective, rehaze_teacher=teacher)
        got = tuple(getattr(config, f.name) for f in dataclasses.fields(expected))
        assert got == dataclasses.astuple(expected), (objective, teacher)
    config = AdaptConfig(backbone="gunet-t", objective="offline", search_steps=7, lr_w=5e-4)
    assert (config.search_steps, config.lr_w, config.size) == (7, 5e-4, free.size)
    assert "h2c" in make_config({"backbone": "gunet"}).objective  # the CLI default stays the paper's


def test_changing_the_objective_takes_the_new_objectives_schedule_but_keeps_set_values() -> None:
    from dehazekit.adapt.config import SCHEDULES

    free = SCHEDULES["clip-free"]
    base = AdaptConfig(backbone="gunet-t", finetune_steps=9)  # h2c schedule, one value set
    offline = base.replace(objective="offline")
    assert (offline.search_steps, offline.size, offline.lr_w) == (free.search_steps, free.size, free.lr_w)
    assert offline.finetune_steps == 9
    assert offline.replace(objective="h2c") == base
    assert "_from_schedule" not in base.to_dict()
    self_label = offline.replace(rehaze_teacher="self")  # the label has its own measured schedule
    expected = SCHEDULES["self-label"]
    assert (self_label.search_steps, self_label.guard_structure_db) == (
        expected.search_steps,
        expected.guard_structure_db,
    )
    assert self_label.finetune_steps == 9


def test_the_config_accepts_exactly_the_objectives_teachers() -> None:
    from dehazekit.adapt.config import REHAZE_TEACHERS
    from dehazekit.objectives.rehaze import TEACHERS

    assert REHAZE_TEACHERS == TEACHERS


def test_an_unknown_rehaze_teacher_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="rehaze_teacher"):
        AdaptConfig(backbone="gunet-t", objective="offline", rehaze_teacher="ema")


def test_adapt_keyword_objective_gets_its_schedule(tmp_path) -> None:
    from dehazekit.adapt.api import _resolve_config

    config = _resolve_config("gunet-t", None, {"objective": "offline", "out": str(tmp_path)})
    assert config.search_steps == AdaptConfig(backbone="gunet-t", objective="offline").search_steps
