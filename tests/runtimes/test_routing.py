"""Router: haze score rises with haze; hysteresis holds through noise, switches on a real change."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.routing import Router, haze_score
from tests.runtimes.video_seq import static_scene

SIGNATURES = {"light": 0.3, "dense": 0.6}


def _hazy(frame: np.ndarray, t: float, airlight: float = 230.0) -> np.ndarray:
    return np.clip(frame * t + airlight * (1 - t), 0, 255).astype(np.uint8)


def test_haze_score_rises_with_haze_density():
    clear = static_scene(count=1, height=96, width=128)[0].astype(np.float32)
    scores = [haze_score(_hazy(clear, t)) for t in (1.0, 0.7, 0.4, 0.15)]
    assert scores == sorted(scores) and scores[-1] - scores[0] > 0.3


def test_noise_around_the_boundary_does_not_thrash():
    rng = np.random.default_rng(0)
    router = Router(SIGNATURES, margin=0.03, hold=8)
    # light for 40 frames, then 60 frames jittering right at the midpoint (0.45 +- 0.04)
    scores = [0.3 + rng.normal(0, 0.02) for _ in range(40)] + [
        0.45 + rng.uniform(-0.04, 0.04) for _ in range(60)
    ]
    choices = [router.step(s) for s in scores]
    switches = sum(a != b for a, b in pairwise(choices))
    assert switches <= 1
    without = Router(SIGNATURES, margin=0.0, hold=1, smooth=0.0)  # no hysteresis: the same noise thrashes
    plain = [without.step(s) for s in scores]
    assert sum(a != b for a, b in pairwise(plain)) > 5


def test_a_real_change_switches_after_hold_frames_and_is_logged():
    router = Router(SIGNATURES, margin=0.03, hold=5, smooth=0.0)
    choices = [router.step(0.3) for _ in range(20)] + [router.step(0.62) for _ in range(20)]
    assert choices[:20] == ["light"] * 20
    assert choices.index("dense") == 20 + 4  # the fifth dense-looking frame switches
    segments = router.report()
    assert [(s["adapter"], s["start"], s["end"]) for s in segments] == [("light", 0, 23), ("dense", 24, 39)]
    assert segments[1]["mean_score"] == pytest.approx(0.62)


def test_router_needs_signatures():
    with pytest.raises(ConfigError, match="haze signature"):
        Router({})
