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
