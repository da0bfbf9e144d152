"""aircons / airjoint (airlight-consistent brightness), alone and mixed with rehaze: tiny inputs."""

from __future__ import annotations

import pytest
import torch

from dehazekit.objectives import create_objective
from dehazekit.objectives.airlight import AirlightConsistency
from dehazekit.runtimes.errors import ConfigError

AIR = torch.tensor([0.78, 0.74, 0.66]).view(1, 3, 1, 1)  # dim, warm: real haze
T, SIZE, SKY = 0.45, 40, 12


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """(hazy, clear): a textured dark scene behind haze of constant transmission, plus an opaque sky
    strip (pure airlight) so the airlight estimate finds A."""
    torch.manual_seed(0)
    clear = 0.1 + 0.45 * torch.rand(1, 3, SIZE, SIZE)
    hazy = clear * T + AIR * (1 - T)
    hazy[..., :SKY, :] = AIR
    clear[..., :SKY, :] = AIR  # sky stays airlight-coloured in the clear image too
    return hazy, clear


JOINT = pytest.mark.parametrize("joint", [False, True], ids=["aircons", "airjoint"])


def _loss(hazy: torch.Tensor, out: torch.Tensor, joint: bool) -> float:
    return float(AirlightConsistency(window=7, joint=joint)(hazy, out))


@JOINT
def test_physically_consistent_output_scores_near_zero_and_uniform_darkening_is_penalised(
    joint: bool,
) -> None:
    hazy, clear = _scene()
    right = _loss(hazy, clear, joint)
    assert right < 0.01
    for gain in (0.8, 0.6):  # a uniformly darkened dehazing: contrast kept, brightness lost
        assert _loss(hazy, gain * clear, joint) > right + 0.03, gain


@JOINT
def test_brighter_but_still_hazy_output_is_not_preferred(joint: bool) -> None:
    hazy, clear = _scene()
    right = _loss(hazy, clear, joint)
    for out in (hazy + 0.1, 0.5 * (hazy + clear) + 0.1):  # lifted haze, half-dehazed and lifted
        assert _loss(hazy, out.clamp(0, 1), joint) > right + 0.03


@JOINT
@pytest.mark.parametrize(("scale", "sign"), [(0.7, 1.0), (1.25, -1.0)])
def test_gradient_is_finite_and_moves_brightness_towards_consistency(
    scale: float, sign: float, joint: bool
) -> None:
    hazy, clear = _scene()
    out = (clear * scale).requires_grad_(True)
    AirlightConsistency(window=7, joint=joint)(hazy, out).backward()
    assert torch.isfinite(out.grad).all()
    step = -out.grad[..., SKY + 4 :, :].sum()  # gradient descent's move of the scene's (non-sky) brightness
    assert float(step) * sign > 0, float(step)


def test_the_mix_adds_the_brightness_term_to_rehaze() -> None:
    """If the term stops counting in a mix (``rehaze+3*airjoint``), darkening costs nothing extra: red."""
    from dehazekit.objectives.rehaze import RehazeObjective

    hazy, clear = _scene()
    net = torch.nn.Identity()
    mix, rehaze = create_objective("rehaze+3*airjoint"), RehazeObjective()
    for obj in (mix, rehaze):
        for term in obj.modules():
            if hasattr(term, "attach"):
                term.attach(net)
    extra = {}
    for name, out in {"right": clear, "dark": 0.7 * clear}.items():
        torch.manual_seed(1)
        a = float(mix(hazy, out))
        torch.manual_seed(1)
        extra[name] = a - float(rehaze(hazy, out))
    assert extra["dark"] > extra["right"] + 0.01


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        AirlightConsistency(window=4)
    with pytest.raises(ConfigError):
        AirlightConsistency(max_gain=0.5)
