"""Re-haze self-training: CLIP-free objective that teaches the network the target's own airlight.

For a hazy input I and the label J = clamp(f0(I), 0, 1) (held fixed, no gradient), where f0 is the
network as it was handed over by ``attach`` (``teacher="base"``, the default) or the network being
adapted itself (``teacher="self"``, the first version):

    A   = airlight of I: mean colour of the brightest ``air_top`` share of I's dark channel
    t   = exp(-beta * d),  d: random smooth pseudo-depth in [depth_near, 1], beta ~ U(beta range)
    I'  = J t + A (1 - t)                          re-haze J with the atmospheric scattering model
    L   = w_cons * mean |f(I') - J|                 the network must undo haze it knows how to undo
        + w_clip * mean (relu(-f(I)) + relu(f(I) - 1))    no values pushed out of range

Why: the base model was trained on synthetic haze with a bright grey airlight (0.75-1.0); real haze
is often dimmer and tinted (about 0.7-0.8 on O-HAZE, estimated from the photos). Handed haze with a
dimmer airlight the base over-subtracts and returns too dark an image, on synthetic re-hazed GT as on
the real photos (benchmarks/README.md). I' is built from the target's own content and airlight, so
f(I') = J is a label the network can be trained on without ground truth: it learns to remove exactly
the haze of this domain. It never rewards darkening (unlike a dark-channel energy), and it does not use
FADE or any no-reference score we evaluate with.

Why the base label: with its own output as the label, brightening feeds on itself; 16 + 96 steps
went from +0.2 dB to -6.2 dB on O-HAZE 35 with luma past GT (132 vs 103 on O-HAZE 27). The frozen
label stays put, so a run can be long enough to fix the real-haze darkening: at 16 + 48 steps it
gains up to +2 dB and brings luma near GT (benchmarks/README.md, "A fixed label").

``airswap`` (``label_airlight``): the label is the labeller's output on the same content and
transmission re-hazed with a grey airlight from its training range, so the base's habit of darkening
any picture cancels and only the target's airlight is taught. Measured and not the default: it stops
the over-brightening of haze the base already handles, and with it most of the brightening that the
too-dark real rows need (benchmarks/README.md, "A label that teaches only the airlight").

The objective calls the network being adapted, so ``adapt`` hands it over with ``attach(model)``
(a generic hook: search and fine-tuning still only call ``objective(hazy, out)``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dehazekit.objectives.base import register_objective
from dehazekit.objectives.dcp import dark_channel
from dehazekit.runtimes.errors import ConfigError


def estimate_airlight(hazy: Tensor, top: float = 0.01, patch: int = 15) -> Tensor:
    """(B, 3, H, W) -> (B, 3): mean colour of the pixels with the brightest dark channel (He et al.)."""
    dark = dark_channel(hazy, patch).flatten(1)
    count = max(1, round(top * dark.shape[1]))
    idx = dark.topk(count, dim=1).indices
    pixels = hazy.flatten(2).gather(2, idx[:, None, :].expand(-1, 3, -1))
    return pixels.mean(dim=2)


def random_transmission(
    shape: tuple[int, int, int],
    beta: tuple[float, float],
    depth_near: float,
    structure: float = 0.35,
    device: torch.device | None = None,
) -> Tensor:
    """(B, 1, H, W) transmission from a smooth random pseudo-depth: a vertical ramp (far at the top)
    blended with coarse noise (share ``structure``), like dehazekit.data.haze.pseudo_depth."""
    b, h, w = shape
    ramp = torch.linspace(1.0, 0.0, h, device=device).view(1, 1, h, 1).expand(b, 1, h, w)
    noise = F.interpolate(
        torch.rand(b, 1, 4, 4, device=device), size=(h, w), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    depth = depth_near + (1 - depth_near) * ((1 - structure) * ramp + structure * noise)
    coef = torch.empty(b, 1, 1, 1, device=device).uniform_(beta[0], beta[1])
    return torch.exp(-coef * depth)


TEACHERS = ("self", "base")
# airswap's label airlight: grey, inside the bundled model's training range (the mean of its presets)
AIRSWAP_LABEL_AIRLIGHT = 0.825


class RehazeObjective(nn.Module):
    """forward(hazy, out) -> scalar; needs ``attach(model)`` first (the network being adapted)."""

    def __init__(
        self,
        beta: tuple[float, float] = (0.4, 1.6),
        depth_near: float = 0.15,
        air_top: float = 0.01,
        w_cons: float = 1.0,
        w_clip: float = 1.0,
        depth_structure: float = 0.35,
        teacher: str = "base",
        label_airlight: float | None = None,
    ) -> None:
        super().__init__()
        if label_airlight is not None and not 0.0 < label_airlight <= 1.0:
            raise ConfigError.build("rehaze label_airlight must be in (0, 1]", got=label_airlight)
        self.label_airlight = label_airlight
        if teacher not in TEACHERS:
            raise ConfigError.build("unknown rehaze teacher", got=teacher, expected=TEACHERS)
        self.teacher = teacher
        self._teacher_net: list[nn.Module] = []
        beta = (float(beta[0]), float(beta[1]))
        if not 0.0 < beta[0] <= beta[1] <= 5.0:
            raise ConfigError.build("rehaze beta must satisfy 0 < low <= high <= 5", got=beta)
        if not (0.0 <= depth_near < 1.0 and 0.0 < air_top <= 0.5 and 0.0 <= depth_structure <= 1.0):
            raise ConfigError.build(
                "rehaze needs depth_near in [0, 1), air_top in (0, 0.5], depth_structure in [0, 1]",
                got={"depth_near": depth_near, "air_top": air_top, "depth_structure": depth_structure},
            )
        if not (w_cons >= 0 and w_clip >= 0):
            raise ConfigError.build("rehaze weights must be >= 0", got={"w_cons": w_cons, "w_clip": w_clip})
        self.beta, self.depth_near, self.air_top = beta, float(depth_near), float(air_top)
        self.depth_structure = float(depth_structure)
        self.weights = {"w_cons": float(w_cons), "w_clip": float(w_clip)}
        self._net: list[nn.Module] = []  # a list, not a submodule: its parameters are not ours

    def attach(self, model: nn.Module, teacher: nn.Module | None = None) -> None:
        """Hand over the network being adapted; with the base label, ``teacher`` is the frozen labeller
        (default: a copy of ``model`` as it is now, i.e. before any adapter learns)."""
        self._net = [model]
        if self.teacher == "base":
            # a frozen labeller: the label stays put, so brightening cannot feed on itself as it
            # does with the current output
            frozen = teacher if teacher is not None else copy.deepcopy(model)
            frozen.eval().requires_grad_(False)
            self._teacher_net = [frozen]

    @property
    def network(self) -> nn.Module:
        """The network handed over by ``attach``."""
        if not self._net:
            raise ConfigError.build(
                "the rehaze objective needs the network", fix="call objective.attach(model)"
            )
        return self._net[0]

    def rehaze(self, hazy: Tensor, clear: Tensor, t: Tensor | None = None) -> Tensor:
        """Re-haze ``clear`` with ``hazy``'s airlight and a random smooth transmission (or ``t``)."""
        air = estimate_airlight(hazy.clamp(0, 1), self.air_top)[..., None, None]
        if t is None:
            t = self.transmission(clear)
        return clear * t + air * (1 - t)

    def transmission(self, clear: Tensor) -> Tensor:
        """A random smooth transmission map for ``clear`` (B, 1, H, W)."""
        shape = (clear.shape[0], *clear.shape[-2:])
        return random_transmission(shape, self.beta, self.depth_near, self.depth_structure, clear.device)

    def terms(self, hazy: Tensor, out: Tensor) -> dict[str, Tensor]:
        net = self.network
        from dehazekit.backbones import forward_padded

        def call(net: nn.Module, x: Tensor) -> Tensor:
            # registered backbones need their pad multiple; any other module is called as it is
            return forward_padded(net, x) if hasattr(net, "backbone_name") else net(x)

        target = out.detach()
        if self._teacher_net:
            teacher = self._teacher_net[0].to(hazy.device)
            with torch.no_grad():
                target = call(teacher, hazy)
        target = target.clamp(0, 1)
        t = self.transmission(target)
        rehazed = self.rehaze(hazy, target, t)
        if self.label_airlight is not None:
            # the label is how the labeller treats the same haze with the airlight it was trained on:
            # only the target's airlight is taught, not the labeller's own bias on this content
            labeller = self._teacher_net[0] if self._teacher_net else net
            with torch.no_grad():
                target = call(labeller, target * t + self.label_airlight * (1 - t)).clamp(0, 1)
        again = call(net, rehazed)
        clip = F.relu(-out) + F.relu(out - 1)
        return {"cons": (again - target).abs().mean(), "clip": clip.mean()}

    def forward(self, hazy: Tensor, out: Tensor) -> Tensor:
        terms = self.terms(hazy, out)
        return self.weights["w_cons"] * terms["cons"] + self.weights["w_clip"] * terms["clip"]


@register_objective("rehaze", options={"teacher": "rehaze_teacher"})
def make_rehaze(
    beta: tuple[float, float] = (0.4, 1.6),
    depth_near: float = 0.15,
    air_top: float = 0.01,
    w_cons: float = 1.0,
    w_clip: float = 1.0,
    depth_structure: float = 0.35,
    teacher: str = "base",
    label_airlight: float | None = None,
) -> RehazeObjective:
    return RehazeObjective(
        beta=beta,
        depth_near=depth_near,
        air_top=air_top,
        w_cons=w_cons,
        w_clip=w_clip,
        depth_structure=depth_structure,
        teacher=teacher,
        label_airlight=label_airlight,
    )


@register_objective("airswap", options={"teacher": "rehaze_teacher"})
def make_airswap(teacher: str = "base", label_airlight: float = AIRSWAP_LABEL_AIRLIGHT) -> RehazeObjective:
    """rehaze whose label is the labeller's output on the same re-hazed content with a grey airlight
    inside its training range."""
    return make_rehaze(teacher=teacher, label_airlight=label_airlight)
