"""Haze synthesis: the scattering formula, seeding, presets, pseudo-depth, Make3D depth."""

from __future__ import annotations

import numpy as np
import pytest

from dehazekit.data.haze import (
    PRESETS,
    HazeConfig,
    get_preset,
    layered_depth,
    load_make3d_depth,
    pseudo_depth,
    synthesize,
)
from dehazekit.runtimes.errors import ConfigError


def _clear(seed: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)


def test_formula_with_given_depth_matches_koschmieder():
    clear = _clear()
    depth_m = np.linspace(5, 60, clear.shape[0] * clear.shape[1], dtype=np.float32).reshape(clear.shape[:2])
    cfg = HazeConfig(beta=(1.3, 1.3), airlight=(0.8, 0.8))
    out = synthesize(clear, np.random.default_rng(0), cfg, depth_m=depth_m)
    t = np.exp(-1.3 * depth_m / cfg.depth_scale)
    expected = clear * t[..., None] + 0.8 * (1 - t[..., None])
    np.testing.assert_allclose(out.hazy, expected, atol=1e-6)
    np.testing.assert_allclose(out.transmission, t, rtol=1e-6)
    assert out.params["beta"] == pytest.approx(1.3)


def test_beta_override_and_denser_haze_lowers_contrast():
    clear = _clear()
    cfg = get_preset("homogeneous")
    light = synthesize(clear, np.random.default_rng(3), cfg, beta=0.3)
    dense = synthesize(clear, np.random.default_rng(3), cfg, beta=3.0)
    assert light.params["mean_t"] > dense.params["mean_t"]
    assert dense.hazy.std() < light.hazy.std() < clear.std()


def test_seeded_reproducible_and_seed_sensitive():
    clear = _clear()
    cfg = get_preset("realistic")
    a = synthesize(clear, np.random.default_rng(5), cfg).hazy
    b = synthesize(clear, np.random.default_rng(5), cfg).hazy
    c = synthesize(clear, np.random.default_rng(6), cfg).hazy
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1


def test_pseudo_depth_far_at_top_and_in_range():
    cfg = get_preset("homogeneous")
    d = pseudo_depth((40, 30), np.random.default_rng(0), cfg)
    assert d.min() >= cfg.depth_near - 1e-6 and d.max() <= 1 + 1e-6
    assert d[:5].mean() > d[-5:].mean()


def test_realistic_airlight_is_tinted_homogeneous_is_grey():
    clear = _clear()
    grey = synthesize(clear, np.random.default_rng(1), PRESETS["homogeneous"]).params["airlight"]
    tinted = synthesize(clear, np.random.default_rng(1), PRESETS["realistic"]).params["airlight"]
    assert len(set(grey)) == 1 and len(set(tinted)) == 3


def test_outdoor_airlight_is_bluish_on_average_and_sometimes_warm():
    clear = _clear()
    rng = np.random.default_rng(2)
    blue_red = [
        a[2] - a[0]
        for a in (synthesize(clear, rng, PRESETS["outdoor"]).params["airlight"] for _ in range(200))
    ]
    # Range (-0.05, 0.2) plus a +-0.03 per-channel tint: mostly blue, a few warm.
    assert 0.05 < np.mean(blue_red) < 0.1 and min(blue_red) < 0 and max(blue_red) > 0.15
    rng = np.random.default_rng(2)
    grey = [synthesize(clear, rng, PRESETS["homogeneous"]).params["airlight"] for _ in range(20)]
    assert all(a[2] == a[0] for a in grey)


def test_layered_depth_puts_a_sharp_near_layer_in_front():
    cfg = PRESETS["outdoor"]
    rng = np.random.default_rng(4)
    base = pseudo_depth((64, 64), rng, cfg)
    layered = layered_depth(base, rng, cfg)
    assert np.all(layered <= base + 1e-6) and layered.min() >= cfg.depth_near * 0.9 - 1e-6
    changed = layered < base - 1e-6
    assert 0.02 < changed.mean() < 0.9
    # A sharp outline: neighbours across the layer's edge differ far more than the smooth base allows.
    assert np.abs(np.diff(layered, axis=1)).max() > 5 * np.abs(np.diff(base, axis=1)).max()


def test_linear_light_haze_lifts_shadows_more_than_srgb_blending():
    dark = np.full((16, 16, 3), 0.1, np.float32)
    depth_m = np.full((16, 16), 40.0, np.float32)
    srgb = HazeConfig(beta=(1.0, 1.0), airlight=(0.9, 0.9))
    lin = HazeConfig(beta=(1.0, 1.0), airlight=(0.9, 0.9), linear_light=True)
    a = synthesize(dark, np.random.default_rng(0), srgb, depth_m=depth_m)
    b = synthesize(dark, np.random.default_rng(0), lin, depth_m=depth_m)
    np.testing.assert_allclose(a.transmission, b.transmission)
    # Same t and A: mixing in linear light then encoding lands far above the sRGB-space blend.
    assert b.hazy.mean() > a.hazy.mean() + 0.1
    # No haze (t = 1) leaves the image unchanged in both (the sRGB round trip is exact to float precision).
    clear = _clear()
    none = synthesize(clear, np.random.default_rng(0), lin, depth_m=np.zeros(clear.shape[:2], np.float32))
    np.testing.assert_allclose(none.hazy, clear, atol=1e-5)


def test_new_fields_off_leave_the_old_presets_streams_unchanged():
    clear = _clear()
    old = HazeConfig(
        **{
            k: v
            for k, v in PRESETS["realistic"].to_dict().items()
            if k not in ("airlight_blue", "depth_layers", "linear_light")
        }
    )
    a = synthesize(clear, np.random.default_rng(9), old).hazy
    b = synthesize(clear, np.random.default_rng(9), PRESETS["realistic"]).hazy
    np.testing.assert_array_equal(a, b)


def test_bad_config_and_unknown_preset_raise():
    with pytest.raises(ConfigError):
        HazeConfig(beta=(2.0, 1.0))
    with pytest.raises(ConfigError):
        HazeConfig(depth_layers=1.5)
    with pytest.raises(ConfigError, match="did you mean"):
        get_preset("homogenous")


def test_make3d_depth_loads_and_resizes(shared_data):
    mats = sorted((shared_data / "depth" / "make3d").glob("*.mat"))
    if not mats:
        pytest.skip("no Make3D depth files")
    depth = load_make3d_depth(mats[0], (64, 48))
    assert depth.shape == (64, 48) and 0 < depth.max() <= 81
