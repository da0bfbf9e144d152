"""DCP objective: dark channel against brute force, term behaviour, preference for dehazed output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dehazekit.objectives import create_objective
from dehazekit.objectives.dcp import DCPObjective, dark_channel, grey_world
from dehazekit.runtimes.errors import ConfigError


def _brute_dark(image: np.ndarray, patch: int) -> np.ndarray:
    per_pixel = image.min(axis=0)
    h, w = per_pixel.shape
    r = patch // 2
    out = np.empty_like(per_pixel)
    for y in range(h):
        for x in range(w):
            out[y, x] = per_pixel[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].min()
    return out


@pytest.mark.parametrize("patch", [1, 3, 15])
def test_dark_channel_matches_brute_force(patch: int) -> None:
    image = torch.rand(2, 3, 19, 23)
    got = dark_channel(image, patch)
    assert got.shape == (2, 1, 19, 23)
    for b in range(2):
        assert np.allclose(got[b, 0].numpy(), _brute_dark(image[b].numpy(), patch))


def _smooth_scene(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(48, 48), mode="bilinear", align_corners=False)


def test_dehazed_output_scores_better_than_hazy() -> None:
    clear = _smooth_scene()
    hazy = 0.6 * clear + 0.4  # atmospheric model, transmission 0.6, white airlight
    obj = DCPObjective()
    assert obj(hazy, clear) < obj(hazy, hazy)
    assert obj(hazy, torch.zeros_like(hazy)) > obj(hazy, clear)  # black image is no escape


def test_terms_zero_where_expected() -> None:
    hazy = _smooth_scene(1)
    terms = DCPObjective().terms(hazy, hazy)
    assert terms["fid"] == 0 and terms["grad"] == 0
    grey = torch.full((1, 3, 8, 8), 0.3)
    assert grey_world(grey).item() == 0.0
    cast = grey.clone()
    cast[:, 2] = 0.8
    assert grey_world(cast).item() == pytest.approx(2 * 0.5**2)


def test_output_clamped_and_gradient_flows() -> None:
    hazy = _smooth_scene(2)
    out = (hazy * 1.5 - 0.2).requires_grad_()
    DCPObjective()(hazy, out).backward()
    inside = (out.detach() > 0) & (out.detach() < 1)
    assert out.grad[inside].abs().sum() > 0
    assert torch.all(out.grad[~inside] == 0)


def test_validation_and_registry() -> None:
    with pytest.raises(ConfigError):
        DCPObjective(patch=14)
    with pytest.raises(ConfigError):
        DCPObjective(w_dark=-1)
    weighted = create_objective("2*dcp")
    hazy, out = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(weighted(hazy, out), 2 * DCPObjective()(hazy, out))
