"""rehaze / offline objective: airlight estimate, and which networks it penalises (tiny inputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dehazekit.objectives import create_objective
from dehazekit.objectives.rehaze import RehazeObjective, estimate_airlight
from dehazekit.runtimes.errors import ConfigError

AIR = torch.tensor([0.78, 0.74, 0.66])  # a dim, warm airlight, like real haze (the base expects 0.75-1.0)
BETA, NEAR, SIZE = 1.0, 0.2, 24


def _transmission() -> torch.Tensor:
    """The transmission the objective draws when depth_structure=0 and beta is fixed (no randomness)."""
    ramp = torch.linspace(1.0, 0.0, SIZE).view(1, 1, SIZE, 1).expand(1, 1, SIZE, SIZE)
    return torch.exp(-BETA * (NEAR + (1 - NEAR) * ramp))


class AirlightDehazer(nn.Module):
    """Inverts I = J t + A (1 - t) exactly for the known t, with its own belief ``air`` about A."""

    def __init__(self, air: torch.Tensor, gain: float = 1.0) -> None:
        super().__init__()
        self.air = nn.Parameter(air.clone().view(1, 3, 1, 1))
        self.gain = nn.Parameter(torch.tensor(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = _transmission()
        return self.gain * (x - self.air * (1 - t)) / t


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """(hazy, clear): a dark textured scene whose top rows are pure airlight (sky), hazed with AIR."""
    torch.manual_seed(0)
    clear = 0.15 + 0.4 * torch.rand(1, 3, SIZE, SIZE)
    t = _transmission()
    hazy = clear * t + AIR.view(1, 3, 1, 1) * (1 - t)
    hazy[..., :6, :] = AIR.view(1, 3, 1, 1)
    return hazy, clear


def _objective(net: nn.Module, teacher: str = "self") -> RehazeObjective:
    obj = RehazeObjective(
        beta=(BETA, BETA), depth_near=NEAR, depth_structure=0.0, air_top=0.05, teacher=teacher
    )
    obj.attach(net)
    return obj


def test_airlight_is_the_colour_of_the_haziest_pixels() -> None:
    hazy, _ = _scene()
    assert torch.allclose(estimate_airlight(hazy, top=0.05)[0], AIR, atol=1e-6)


def test_network_with_the_targets_airlight_scores_zero_and_darkening_or_hazy_ones_do_not() -> None:
    hazy, clear = _scene()
    losses = {}
    for name, air in {"right": AIR, "darkens": AIR + 0.15, "leaves_haze": AIR - 0.2}.items():
        net = AirlightDehazer(air)
        losses[name] = float(_objective(net)(hazy, clear).detach())
    assert losses["right"] < 1e-5
    # over-subtracting a too-bright airlight (the base's failure: too dark) is penalised ...
    assert losses["darkens"] > 0.01
    # ... and so is a brighter output that leaves haze in
    assert losses["leaves_haze"] > 0.01


@pytest.mark.parametrize("offset", [0.15, -0.2])
def test_gradient_moves_the_networks_airlight_towards_the_targets(offset: float) -> None:
    hazy, clear = _scene()
    net = AirlightDehazer(AIR + offset)
    _objective(net)(hazy, clear).backward()
    step = -net.air.grad.view(3)
    assert torch.all(torch.sign(step) == -torch.sign(torch.tensor(offset))), step


def test_values_out_of_range_are_penalised_and_output_gets_no_self_target_gradient() -> None:
    hazy, clear = _scene()
    net = AirlightDehazer(AIR)
    out = (clear * 1.0).requires_grad_(True)
    assert float(_objective(net).terms(hazy, out)["clip"]) == 0.0
    blown = (clear + 0.8).requires_grad_(True)
    terms = _objective(net).terms(hazy, blown)
    assert float(terms["clip"]) > 0.1
    terms["cons"].backward()
    assert blown.grad is None  # the target is held fixed: no "make the target easy" shortcut


def test_offline_names_the_recommended_objective_and_needs_the_network() -> None:
    obj = create_objective("offline")
    assert isinstance(obj, RehazeObjective)
    hazy, clear = _scene()
    with pytest.raises(ConfigError, match="needs the network"):
        obj(hazy, clear)
    with pytest.raises(ConfigError):
        RehazeObjective(beta=(2.0, 1.0))


def test_uniformly_darkening_network_is_pushed_back_up_while_dcp_rewards_darkening() -> None:
    hazy, clear = _scene()
    net = AirlightDehazer(AIR, gain=0.8)
    obj = _objective(net)
    loss = obj(hazy, net(hazy))
    loss.backward()
    assert float(loss) > 0.01 and float(net.gain.grad) < 0  # gradient descent raises the gain
    # the old dcp objective scores the same darkening as an improvement: why it is not the default
    dcp = create_objective("dcp")
    assert float(dcp(hazy, 0.8 * clear)) < float(dcp(hazy, clear))


class DriftingDehazer(AirlightDehazer):
    """The exact inverter blended (share ``drift``) with a flat bright image that ignores the input."""

    def __init__(self) -> None:
        super().__init__(AIR)
        self.drift = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.drift) * super().forward(x) + self.drift * 0.9


def test_base_teacher_penalises_a_drift_to_flat_brightness_that_the_self_label_scores_perfect() -> None:
    # the self label's degenerate fixed point: a network that paints every input the same bright grey
    # reproduces its own output from any re-hazed version of it (loss 0), so nothing pulls it back; the
    # base label (a frozen copy taken at attach) still asks for the starting output
    hazy, _ = _scene()
    net = DriftingDehazer()
    objectives = {t: _objective(net, teacher=t) for t in ("self", "base")}
    assert float(objectives["base"](hazy, net(hazy)).detach()) < 1e-5  # nothing to learn at attach
    with torch.no_grad():
        net.drift.fill_(1.0)
    losses = {t: obj.terms(hazy, net(hazy))["cons"] for t, obj in objectives.items()}
    assert float(losses["self"].detach()) < 1e-6
    assert float(losses["base"].detach()) > 0.1
    losses["base"].backward()
    assert float(net.drift.grad) > 0  # gradient descent moves back towards the input-dependent output


GREY = 0.825  # airswap's label airlight


def _airswap(net: nn.Module, label_airlight: float | None) -> RehazeObjective:
    obj = RehazeObjective(
        beta=(BETA, BETA),
        depth_near=NEAR,
        depth_structure=0.0,
        air_top=0.05,
        teacher="base",
        label_airlight=label_airlight,
    )
    obj.attach(net)
    return obj


def _grey_scene() -> torch.Tensor:
    """A hazy scene whose airlight is the grey one the label uses (the base's own haze)."""
    _, clear = _scene()
    t = _transmission()
    hazy = clear * t + GREY * (1 - t)
    hazy[..., :6, :] = GREY
    return hazy


def test_airswap_does_not_teach_brightening_where_the_base_only_darkens_its_content() -> None:
    # a base that knows this airlight but darkens whatever it is given (the bundled model does: run on
    # its own output it darkens it again); offline's label then always asks to brighten, airswap's not
    hazy = _grey_scene()
    losses = {}
    for name, label_air in {"offline": None, "airswap": GREY}.items():
        net = AirlightDehazer(torch.full((3,), GREY), gain=0.8)
        objective = _airswap(net, label_air)  # the frozen labeller is the gain-0.8 base
        for gain in (0.8, 0.9):
            with torch.no_grad():
                net.gain.fill_(gain)
            losses[name, gain] = float(objective(hazy, net(hazy)).detach())
    assert losses["offline", 0.9] < losses["offline", 0.8] - 0.01  # brighter scores better
    assert losses["airswap", 0.8] < 1e-6 < losses["airswap", 0.9]  # the base is already its optimum


def test_airswap_still_teaches_the_targets_airlight() -> None:
    hazy, _ = _scene()  # dim, warm airlight
    net = AirlightDehazer(torch.full((3,), GREY))
    objective = _airswap(net, GREY)
    objective(hazy, net(hazy)).backward()
    step = -net.air.grad.view(3)
    assert torch.all(torch.sign(step) == torch.sign(AIR - GREY)), step


@pytest.mark.parametrize("bad", [0.0, 1.2])
def test_label_airlight_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="label_airlight"):
        RehazeObjective(label_airlight=bad)


def test_airswap_is_registered_with_the_grey_label() -> None:
    objective = create_objective("airswap")
    assert objective.label_airlight == GREY and objective.teacher == "base"
