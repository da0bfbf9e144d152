"""Small contracts of the objectives that the behavioural tests did not pin (found by
benchmarks/mutants.py)."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import pytest
import torch

from dehazekit.objectives import create_objective
from dehazekit.objectives.base import WeightedSum
from dehazekit.objectives.dcp import DCPObjective, grey_world


def test_grey_world_matches_hand_computation() -> None:
    image = torch.ones(1, 3, 4, 4) * torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    expected = 0.3**2 + 0.7**2 + 0.4**2  # (r-g)^2 + (r-b)^2 + (g-b)^2
    assert float(grey_world(image)[0]) == pytest.approx(expected, rel=1e-5)


def test_a_single_unweighted_term_is_the_objective_itself() -> None:
    assert isinstance(create_objective("dcp"), DCPObjective)
    weighted = create_objective("2*dcp")
    assert isinstance(weighted, WeightedSum) and weighted.weights == [2.0]
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(weighted(x, y), 2 * create_objective("dcp")(x, y))


def test_h2c_train_switches_itself_but_never_clip(tiny_h2c) -> None:
    tiny_h2c.train()
    assert tiny_h2c.training and not tiny_h2c.clip.training
    tiny_h2c.eval()
    assert not tiny_h2c.training and not tiny_h2c.clip.training


def test_open_clip_info_lines_are_dropped_and_others_kept() -> None:
    from dehazekit.objectives.clip_model import _DropOpenClipInfo

    def record(path: str, level: int) -> logging.LogRecord:
        return logging.LogRecord("x", level, path, 1, "msg", None, None)

    drop = _DropOpenClipInfo()
    assert not drop.filter(record("/site-packages/open_clip/factory.py", logging.INFO))
    assert drop.filter(record("/site-packages/open_clip/factory.py", logging.WARNING))
    assert drop.filter(record("/site-packages/dehazekit/objectives/h2c.py", logging.INFO))


@pytest.mark.parametrize(
    ("raised", "reachable"),
    [
        (urllib.error.HTTPError("https://x", 404, "nope", None, None), True),  # a server answered
        (urllib.error.URLError("no route"), False),
        (OSError("down"), False),
        (None, True),
    ],
)
def test_network_probe(monkeypatch: pytest.MonkeyPatch, raised, reachable: bool) -> None:
    # No network here: urlopen stands in for the server's answer (or its absence).
    import contextlib

    from dehazekit.objectives import clip_model

    def urlopen(*args, **kwargs):
        if raised is not None:
            raise raised
        return contextlib.nullcontext()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert clip_model._probe() is reachable


@pytest.mark.parametrize(
    "prompts", [[("   ", "a clear photo")], [("a hazy photo", "")], [("a hazy photo", 3)]]
)
def test_blank_or_non_text_prompts_are_refused(prompts) -> None:
    from dehazekit.objectives.h2c import resolve_prompts
    from dehazekit.runtimes.errors import ConfigError

    with pytest.raises(ConfigError, match="bad H2C prompts"):
        resolve_prompts(prompts)


def test_random_transmission_without_structure_is_the_depth_ramp() -> None:
    from dehazekit.objectives.rehaze import random_transmission

    t = random_transmission((2, 5, 3), beta=(1.0, 1.0), depth_near=0.2, structure=0.0)
    depth = 0.2 + 0.8 * torch.linspace(1.0, 0.0, 5)  # far (depth 1) at the top row, near at the bottom
    torch.testing.assert_close(t[:, 0, :, 1], torch.exp(-depth).expand(2, 5))


def test_rehaze_with_opaque_haze_returns_the_hazy_airlight() -> None:
    from dehazekit.objectives.rehaze import RehazeObjective

    objective = RehazeObjective(beta=(5.0, 5.0), depth_near=0.99)
    hazy = torch.full((1, 3, 8, 8), 0.6)
    rehazed = objective.rehaze(hazy, torch.zeros(1, 3, 8, 8))  # t = exp(-5 * ~1) ~ 0.007
    torch.testing.assert_close(rehazed, torch.full_like(rehazed, 0.6), atol=0.01, rtol=0)


def test_rehaze_accepts_fractional_weights_and_refuses_negative_ones() -> None:
    from dehazekit.objectives.rehaze import RehazeObjective
    from dehazekit.runtimes.errors import ConfigError

    assert RehazeObjective(w_cons=0.5, w_clip=0.25).weights == {"w_cons": 0.5, "w_clip": 0.25}
    with pytest.raises(ConfigError, match="weights"):
        RehazeObjective(w_cons=-0.1)
