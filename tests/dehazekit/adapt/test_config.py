"""AdaptConfig validation and the resume fingerprint."""

from __future__ import annotations

import pytest

from dehazekit.adapt import AdaptConfig
from dehazekit.runtimes.errors import ConfigError


@pytest.mark.parametrize(
    "changes",
    [
        {"top_k": 0},
        {"top_k": None},
        {"gate_threshold": 1.5},
        {"hypergrad": "second-order"},
        {"size": 8},
        {"rank": 0},
        {"lr_w": 0.0},
        {"batch_size": 0},
        {"search_steps": 0},
        {"seed": -1},
        {"objective": " "},
        {"checkpoint_every": -1},
        {"top_k": True},
        {"strength": 0.0},
        {"strength": 1.5},
        {"strength": True},
    ],
)
def test_invalid_values_rejected(changes: dict) -> None:
    with pytest.raises(ConfigError):
        AdaptConfig(backbone="tiny-gunet", **changes)


def test_threshold_only_selection_is_allowed() -> None:
    config = AdaptConfig(top_k=None, gate_threshold=0.5)
    assert config.top_k is None


def test_fingerprint_ignores_output_only_fields() -> None:
    a = AdaptConfig(backbone="tiny-gunet", out="x", checkpoint_every=1)
    b = AdaptConfig(backbone="tiny-gunet", out="y", checkpoint_every=5, resume=True, strength=0.5)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != AdaptConfig(backbone="tiny-gunet", seed=1).fingerprint()
    assert AdaptConfig(prompts=[("a", "b")]).to_dict()["prompts"] == [["a", "b"]]


def test_every_objective_whose_label_the_teacher_flag_picks_gets_the_self_label_schedule() -> None:
    from dehazekit.adapt.config import SCHEDULES, schedule_for
    from dehazekit.objectives.base import list_objectives, objective_option_fields

    labelled = [n for n in list_objectives() if "rehaze_teacher" in objective_option_fields(n).values()]
    assert {"rehaze", "offline", "airswap"} <= set(labelled)
    for name in labelled:
        assert schedule_for(name, "self") == SCHEDULES["self-label"], name
        assert schedule_for(name, "base") == SCHEDULES["clip-free"], name
