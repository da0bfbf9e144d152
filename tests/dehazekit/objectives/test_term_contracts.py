"""Contracts of the dcp and h2c terms that the behavioural tests did not pin (found by benchmarks/mutants.py):
what is accepted, that every term is a penalty, inputs outside [0, 1], and what h2c freezes and stores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dehazekit.objectives.clip_model import image_size_of, load_clip, mean_std_of
from dehazekit.objectives.dcp import DCPObjective
from dehazekit.objectives.h2c import H2CObjective
from tests.dehazekit.objectives.conftest import TINY_CLIP

WEIGHTS = ("w_dark", "w_fid", "w_grad", "w_color")


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hazy = 0.4 + 0.5 * torch.rand(1, 3, 16, 16, generator=gen)
    out = torch.rand(1, 3, 16, 16, generator=gen) * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)  # a cast
    return hazy, out


def test_dcp_accepts_the_smallest_window_and_zero_weights() -> None:
    # patch 1 is the per-pixel dark channel (a valid odd window); weight 0 switches a term off
    hazy, out = _pair()
    per_pixel = DCPObjective(patch=1)
    torch.testing.assert_close(per_pixel.terms(hazy, out)["dark"], out.amin(dim=1).mean())
    for name in WEIGHTS:
        alone = DCPObjective(**{w: (1.0 if w == name else 0.0) for w in WEIGHTS})
        term = name.removeprefix("w_")
        torch.testing.assert_close(alone(hazy, out), alone.terms(hazy, out)[term])


@pytest.mark.parametrize("name", WEIGHTS)
def test_every_dcp_term_is_a_penalty_raising_its_weight_never_lowers_the_loss(name: str) -> None:
    hazy, out = _pair()
    low, high = DCPObjective(**{name: 0.5}), DCPObjective(**{name: 2.0})
    assert float(high(hazy, out)) > float(low(hazy, out))


def test_dcp_scores_a_hazy_input_outside_0_1_as_its_clipped_version() -> None:
    # the output is clipped to [0, 1]; an input beyond it (sensor overshoot, a bad loader) must not add a
    # fidelity/gradient penalty the output can never remove
    hazy, out = _pair()
    over = hazy.clone()
    over[..., :4, :] = 1.6
    objective = DCPObjective()
    for key, value in objective.terms(over, out).items():
        torch.testing.assert_close(value, objective.terms(over.clamp(0, 1), out)[key], msg=key)


class _Visual(nn.Module):
    def __init__(self, **attrs) -> None:
        super().__init__()
        for key, value in attrs.items():
            setattr(self, key, value)


class _Clip(nn.Module):
    def __init__(self, **attrs) -> None:
        super().__init__()
        self.visual = _Visual(**attrs)


def test_clip_input_size_and_normalisation_come_from_the_model() -> None:
    model = _Clip(image_size=(32, 48), preprocess_cfg={"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)})
    assert image_size_of(model) == (32, 48)  # (height, width), not a square of either
    assert image_size_of(_Clip(image_size=40)) == (40, 40)
    assert mean_std_of(model) == ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def test_a_visual_tower_without_a_size_gets_open_clips_own_default() -> None:
    from open_clip.model import CLIPVisionCfg

    size = CLIPVisionCfg().image_size
    assert image_size_of(_Clip()) == (size, size)


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip(str(TINY_CLIP), None)


def test_h2c_freezes_a_clip_model_it_is_handed_unfrozen(tiny_clip) -> None:
    model, tokenizer = tiny_clip
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        H2CObjective(model, tokenizer, [("a hazy photo", "a clear photo")])
        assert not any(p.requires_grad for p in model.parameters())
    finally:
        for p in model.parameters():
            p.requires_grad_(False)


def test_h2c_stores_only_its_clip_weights_so_loading_state_never_swaps_the_prompts(tiny_clip) -> None:
    # mean/std and the text direction are derived from the model and the prompts; a state_dict from an
    # objective with other prompts must not overwrite this one's direction
    model, tokenizer = tiny_clip
    fog = H2CObjective(model, tokenizer, [("a foggy street", "a sunny street")])
    smoke = H2CObjective(model, tokenizer, [("a smoky room", "a clean room")])
    assert set(fog.state_dict()) == {f"clip.{k}" for k in model.state_dict()}
    direction = fog.text_direction.clone()
    fog.load_state_dict(smoke.state_dict())
    assert torch.equal(fog.text_direction, direction)
    assert not torch.allclose(fog.text_direction, smoke.text_direction)


def test_h2c_scores_a_hazy_input_outside_0_1_as_its_clipped_version(tiny_h2c) -> None:
    # out is clipped before CLIP; the input it is compared with must be read on the same [0, 1] scale
    hazy, out = _pair()
    over = hazy.clone()
    over[..., :6, :] = 1.7
    torch.testing.assert_close(tiny_h2c(over, out), tiny_h2c(over.clamp(0, 1), out))
