"""Contracts of the rehaze objective that the behavioural tests did not pin (found by benchmarks/mutants.py):
which pixels give the airlight, the range of the random pseudo-depth and haze density, the settings it
accepts, and that the self-target is the clipped output."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dehazekit.objectives.rehaze import RehazeObjective, estimate_airlight, random_transmission
from dehazekit.runtimes.errors import ConfigError


def test_airlight_averages_exactly_the_top_share_of_the_dark_channel() -> None:
    # patch 1: the dark channel is the per-pixel channel minimum, so the expected pixels can be picked by hand
    image = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(3))
    dark = image.amin(dim=1).flatten()
    top = dark.argsort(descending=True)[:5]  # 5 % of 100 pixels
    expected = image.flatten(2)[0][:, top].mean(dim=1)
    torch.testing.assert_close(estimate_airlight(image, top=0.05, patch=1)[0], expected)


def test_airlight_of_a_tiny_input_is_its_single_haziest_pixel() -> None:
    # a share below one pixel still takes one pixel, the haziest, rather than blending in darker ones
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(4)) * 0.5
    image[0, :, 2, 1] = torch.tensor([0.9, 0.8, 0.7])
    torch.testing.assert_close(estimate_airlight(image, top=0.01, patch=1)[0], torch.tensor([0.9, 0.8, 0.7]))


def test_random_depth_with_full_structure_stays_in_range_and_varies() -> None:
    # depth in [depth_near, 1] means t in [exp(-beta), exp(-beta * depth_near)] whatever the noise draws
    # (bicubic upsampling overshoots); the noise must still make the depth vary within each image
    torch.manual_seed(5)
    t = random_transmission((32, 16, 16), beta=(1.0, 1.0), depth_near=0.2, structure=1.0)
    assert float(t.min()) >= math.exp(-1.0) - 1e-6 and float(t.max()) <= math.exp(-0.2) + 1e-6
    assert float(t.flatten(1).std(dim=1).min()) > 0.0


def test_haze_density_is_drawn_across_the_whole_beta_range() -> None:
    # structure 0: depth is the known ramp, so each image's density is -log(t) / depth at any pixel
    torch.manual_seed(6)
    t = random_transmission((64, 4, 2), beta=(0.4, 1.6), depth_near=0.5, structure=0.0)
    density = -t[:, 0, 0, 0].log() / 1.0  # top row: depth 1
    assert float(density.min()) >= 0.4 - 1e-5 and float(density.max()) <= 1.6 + 1e-5
    assert float(density.max() - density.min()) > 0.6  # spans the range, not one end of it


@pytest.mark.parametrize(
    "bad",
    [
        {"beta": (1.0, 6.0)},
        {"depth_near": 1.0},
        {"depth_near": -0.1},
        {"air_top": 0.0},
        {"air_top": 0.6},
        {"depth_structure": 1.5},
        {"depth_structure": -0.1},
    ],
)
def test_rehaze_refuses_settings_outside_the_ranges_its_message_states(bad: dict) -> None:
    with pytest.raises(ConfigError):
        RehazeObjective(**bad)


def test_rehaze_accepts_the_edges_of_its_ranges_and_zero_weights() -> None:
    # depth_near 0 (a point at the camera), the largest air_top, no/only structure, a term switched off
    for ok in (
        {"beta": (5.0, 5.0), "depth_near": 0.0, "air_top": 0.5, "depth_structure": 0.0},
        {"depth_structure": 1.0, "w_cons": 0.0, "w_clip": 0.0},
    ):
        RehazeObjective(**ok)


@pytest.mark.parametrize("batch", [1, 2])
def test_rehaze_gives_one_image_per_input_in_range_even_for_an_overexposed_input(batch: int) -> None:
    # clear in [0, 1] and an airlight read from the input clipped to [0, 1]: the blend stays in [0, 1]
    gen = torch.Generator().manual_seed(7)
    hazy = 0.8 + 0.7 * torch.rand(batch, 3, 8, 8, generator=gen)  # up to 1.5: sensor overshoot
    clear = torch.rand(batch, 3, 8, 8, generator=gen)
    rehazed = RehazeObjective().rehaze(hazy, clear)
    assert rehazed.shape == clear.shape
    assert float(rehazed.min()) >= 0.0 and float(rehazed.max()) <= 1.0


def _identity_objective(**options) -> RehazeObjective:
    objective = RehazeObjective(**options)
    objective.attach(nn.Identity())
    return objective


def test_the_consistency_target_is_the_output_clipped_to_0_1() -> None:
    # L_cons = mean |f(I') - J| with J = clamp(out, 0, 1) and I' the re-hazed J (module docstring): written
    # out here with the objective's own random draw (same seed) and an identity network
    gen = torch.Generator().manual_seed(8)
    hazy = torch.rand(2, 3, 8, 8, generator=gen)
    out = 1.5 * torch.rand(2, 3, 8, 8, generator=gen) - 0.2  # partly outside [0, 1]
    objective = _identity_objective(teacher="self")
    clear = out.clamp(0, 1)
    torch.manual_seed(0)
    expected = (objective.rehaze(hazy, clear) - clear).abs().mean()
    torch.manual_seed(0)
    torch.testing.assert_close(objective.terms(hazy, out)["cons"], expected)


def test_the_base_teacher_label_is_the_clipped_output_of_the_network_as_attached() -> None:
    # teacher="base": J = clamp(f0(I), 0, 1) with f0 a frozen copy taken at attach(); later changes to
    # the network move f(I') but never the label (written out with the objective's own random draw)
    gen = torch.Generator().manual_seed(10)
    hazy = torch.rand(2, 3, 8, 8, generator=gen)
    net = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        net.weight.copy_(1.3 * torch.eye(3).view(3, 3, 1, 1))
        net.bias.fill_(-0.1)
    objective = RehazeObjective(teacher="base")
    objective.attach(net)
    with torch.no_grad():
        label = net(hazy).clamp(0, 1)
        net.weight.mul_(0.5)  # "training" after attach
    torch.manual_seed(0)
    expected = (net(objective.rehaze(hazy, label)) - label).abs().mean()
    for out in (torch.zeros_like(hazy), torch.rand(2, 3, 8, 8, generator=gen)):  # out is not the label
        torch.manual_seed(0)
        torch.testing.assert_close(objective.terms(hazy, out)["cons"], expected)


def test_an_unknown_teacher_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="teacher"):
        RehazeObjective(teacher="ema")


def test_raising_the_range_weight_never_lowers_the_loss_of_an_out_of_range_output() -> None:
    gen = torch.Generator().manual_seed(9)
    hazy = torch.rand(1, 3, 8, 8, generator=gen)
    out = 1.5 * torch.rand(1, 3, 8, 8, generator=gen) - 0.2
    losses = []
    for w_clip in (0.5, 2.0):
        torch.manual_seed(0)
        losses.append(float(_identity_objective(w_clip=w_clip)(hazy, out)))
    assert losses[1] > losses[0]
