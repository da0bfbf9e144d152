"""Airlight-consistent brightness: a dehazed image's local brightness must match the contrast it gained.

Atmospheric scattering, I = J t + A (1 - t), with t smooth (it depends on depth, not on the scene's
colours). In a small window where t is about constant, the mean and the spread of I and J are tied:

    A - mean(J) = (A - mean(I)) / t        std(J) = std(I) / t

so the contrast gain g = std(J) / std(I) that the network chose fixes how bright the window must be:

    mean(J) = A - (A - mean(I)) g

A network that over-subtracts haze (the base model on real haze with a dimmer airlight than it was
trained on) darkens a window by more than its contrast gain allows; one that leaves the image bright
but hazy has g = 1 and is held to the input's own brightness, never above it where I < A. The term
compares each window's mean with that target; g is measured on luma (haze is near-achromatic: one t
for the three channels) and held fixed (no gradient), so the term moves brightness, not contrast. A is
estimated from the input (dehazekit.objectives.rehaze.estimate_airlight). No ground truth, no CLIP,
no no-reference score we evaluate with.

Two registered forms, meant to be mixed with rehaze (``rehaze+3*airjoint``; neither removes haze by
itself: the input returned unchanged satisfies both):
  aircons   g held fixed: only brightness moves. On the bundled model the target overshoots (the model
            restores less contrast than its darkening implies: O-HAZE target luma ~127 vs GT ~101).
  airjoint  g keeps its gradient: the network may restore contrast instead of (or with) brightness.
Benchmark (benchmarks/README.md, "Brightness"): both lift O-HAZE 27/35 more than rehaze alone, but
neither is the default ``offline``: aircons lost up to 0.31 dB on figure crops, airjoint loses on
NH-HAZE (already too bright) in every seed, and brightness moved only a few luma points in the
benchmark's 16 steps.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dehazekit.objectives.base import register_objective
from dehazekit.runtimes.errors import ConfigError

_LUMA = (0.299, 0.587, 0.114)


def _box(x: Tensor, k: int) -> Tensor:
    pad = min(k // 2, x.shape[-1] - 1, x.shape[-2] - 1)
    return F.avg_pool2d(F.pad(x, (pad,) * 4, mode="reflect"), 2 * pad + 1, 1)


def _mean_std(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    mean = _box(x, k)
    return mean, (_box(x * x, k) - mean * mean).clamp_min(1e-8).sqrt()


def _luma(x: Tensor) -> Tensor:
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


class AirlightConsistency(nn.Module):
    """forward(hazy, out) -> contrast-weighted mean |local mean of out - airlight-consistent target|."""

    def __init__(
        self, window: int = 15, max_gain: float = 10.0, air_top: float = 0.01, joint: bool = False
    ) -> None:
        super().__init__()
        if not (window >= 3 and window % 2 == 1 and max_gain >= 1.0 and 0.0 < air_top <= 0.5):
            raise ConfigError.build(
                "airlight consistency needs an odd window >= 3, max_gain >= 1, air_top in (0, 0.5]",
                got={"window": window, "max_gain": max_gain, "air_top": air_top},
            )
        self.window, self.max_gain, self.air_top = int(window), float(max_gain), float(air_top)
        self.joint = bool(
            joint
        )  # True: the gain keeps its gradient (contrast may move instead of brightness)

    def target(self, hazy: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
        """(target local mean of out, per-window weight); the target has no gradient unless ``joint``."""
        from dehazekit.objectives.rehaze import estimate_airlight

        hazy, out = hazy.clamp(0, 1), (out if self.joint else out.detach()).clamp(0, 1)
        air = estimate_airlight(hazy, self.air_top)[..., None, None]
        mean_in = _box(hazy, self.window)
        _, std_in = _mean_std(_luma(hazy), self.window)
        _, std_out = _mean_std(_luma(out), self.window)
        # 1/t from the contrast the network added; t <= 1, so a contrast loss is read as "no haze removed"
        gain = (std_out / std_in).clamp(1.0, self.max_gain)
        target = (air - (air - mean_in) * gain).clamp(0, 1)
        return target, std_in  # flat windows say little about t: weight by the input's local contrast

    def forward(self, hazy: Tensor, out: Tensor) -> Tensor:
        target, weight = self.target(hazy, out)
        err = (_box(out, self.window) - target).abs().mean(1, keepdim=True)
        return (weight * err).sum() / weight.sum().clamp_min(1e-8)


@register_objective("aircons")
def make_aircons(window: int = 15, max_gain: float = 10.0, air_top: float = 0.01) -> AirlightConsistency:
    return AirlightConsistency(window=window, max_gain=max_gain, air_top=air_top)


@register_objective("airjoint")
def make_airjoint(window: int = 15, max_gain: float = 10.0, air_top: float = 0.01) -> AirlightConsistency:
    """aircons whose contrast gain also takes gradient (a variant tried on the benchmark)."""
    return AirlightConsistency(window=window, max_gain=max_gain, air_top=air_top, joint=True)
