"""The target-domain presets of benchmarks/adapt_gt.py (`dehazekit synth --preset ...`)."""

from __future__ import annotations

import numpy as np
import pytest

from dehazekit.data.haze import HazeConfig, get_preset, synthesize
from dehazekit.runtimes.errors import ConfigError


def _hazy(preset: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    clear = np.full((48, 64, 3), 0.2, np.float32)  # grey scene: any colour in the output is the airlight's
    sample = synthesize(clear, np.random.default_rng(seed), get_preset(preset))
    return sample.hazy, sample.params


def test_coloured_airlight_presets_tint_the_haze() -> None:
    dust, params = _hazy("dust")
    r, g, b = dust[:8].reshape(-1, 3).mean(0)  # top rows: the farthest, haziest part
    assert r > g > b and params["airlight"][0] - params["airlight"][2] > 0.15
    blue, _ = _hazy("bluegrey")
    r, g, b = blue[:8].reshape(-1, 3).mean(0)
    assert b > g > r


def test_dense_preset_leaves_less_transmission_and_patchy_varies_in_space() -> None:
    dense = [_hazy("dense", s)[1]["mean_t"] for s in range(3)]
    homogeneous = [_hazy("homogeneous", s)[1]["mean_t"] for s in range(3)]
    assert max(dense) < min(homogeneous)
    clear = np.full((64, 64, 3), 0.2, np.float32)
    patchy = synthesize(clear, np.random.default_rng(1), get_preset("patchy")).transmission
    flat = synthesize(clear, np.random.default_rng(1), get_preset("homogeneous")).transmission
    # the same row of a patchy image varies far more than under homogeneous haze
    assert patchy[32].std() > 3 * flat[32].std()


def test_airlight_colour_is_validated() -> None:
    with pytest.raises(ConfigError, match="airlight_colour"):
        HazeConfig(airlight_colour=(1.0, 0.0, 1.0))
