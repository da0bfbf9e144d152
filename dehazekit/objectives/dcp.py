"""DCP objective: a CLIP-free, weight-free unsupervised dehazing loss for offline and edge use.

For a hazy input I in [0, 1] and the network output J (clamped to [0, 1] before every term):

    L = w_dark  * mean_x DC_p(J)(x)                          dark-channel energy
      + w_fid   * mean |J - I|                               fidelity to the input
      + w_grad  * mean (|dx J - dx I| + |dy J - dy I|)       structure (edges stay where they are)
      + w_color * mean_b sum_{c<c'} (mu_c(J) - mu_c'(J))^2   grey-world colour constancy

    DC_p(J)(x) = min_{y in p x p window around x} min_{c in RGB} J_c(y)

Defaults: p = 15, w_dark = 1.0, w_fid = 0.5, w_grad = 1.0, w_color = 0.5.

Why: by the dark channel prior (He et al., CVPR 2009) haze-free outdoor patches have a dark channel
near 0 while haze lifts it towards the airlight, so lowering it removes haze. Alone it is minimised
by a black image; the fidelity and gradient terms keep the output tied to the input's content and
edges (w_fid < 1 lets a uniform airlight offset go, which is what dehazing removes), and the
grey-world term stops the dark-channel term from buying its decrease with a colour cast (pushing
one channel down everywhere). The window minimum is a max-pool of the negated image, padded by
replication so borders see only real pixels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dehazekit.objectives.base import register_objective
from dehazekit.runtimes.errors import ConfigError


def dark_channel(image: Tensor, patch: int = 15) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): min over channels, then over a patch x patch window."""
    per_pixel = image.amin(dim=1, keepdim=True)
    pad = patch // 2
    padded = F.pad(-per_pixel, (pad, pad, pad, pad), mode="replicate")
    return -F.max_pool2d(padded, kernel_size=patch, stride=1)


def _gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


def grey_world(image: Tensor) -> Tensor:
    """Per-image sum over channel pairs of squared differences of channel means; (B,)."""
    mu = image.mean(dim=(2, 3))
    r, g, b = mu[:, 0], mu[:, 1], mu[:, 2]
    return (r - g) ** 2 + (r - b) ** 2 + (g - b) ** 2


class DCPObjective(nn.Module):
    """forward(hazy, out) -> scalar; hazy, out: (B, 3, H, W) float32, hazy in [0, 1]."""

    def __init__(
        self,
        patch: int = 15,
        w_dark: float = 1.0,
        w_fid: float = 0.5,
        w_grad: float = 1.0,
        w_color: float = 0.5,
    ) -> None:
        super().__init__()
        if patch < 1 or patch % 2 == 0:
            raise ConfigError.build("dcp patch must be a positive odd number", got=patch, expected="e.g. 15")
        weights = {"w_dark": w_dark, "w_fid": w_fid, "w_grad": w_grad, "w_color": w_color}
        bad = {k: v for k, v in weights.items() if not (float(v) >= 0.0)}
        if bad:
            raise ConfigError.build("dcp weights must be >= 0", got=bad)
        self.patch = int(patch)
        self.weights = {k: float(v) for k, v in weights.items()}

    def terms(self, hazy: Tensor, out: Tensor) -> dict[str, Tensor]:
        """Each unweighted term as a scalar (for logging and tests)."""
        out = out.clamp(0.0, 1.0)
        hazy = hazy.clamp(0.0, 1.0)
        gx_o, gy_o = _gradients(out)
        gx_i, gy_i = _gradients(hazy)
        return {
            "dark": dark_channel(out, self.patch).mean(),
            "fid": (out - hazy).abs().mean(),
            "grad": (gx_o - gx_i).abs().mean() + (gy_o - gy_i).abs().mean(),
            "color": grey_world(out).mean(),
        }

    def forward(self, hazy: Tensor, out: Tensor) -> Tensor:
        terms = self.terms(hazy, out)
        w = self.weights
        return (
            w["w_dark"] * terms["dark"]
            + w["w_fid"] * terms["fid"]
            + w["w_grad"] * terms["grad"]
            + w["w_color"] * terms["color"]
        )


@register_objective("dcp")
def make_dcp(
    patch: int = 15, w_dark: float = 1.0, w_fid: float = 0.5, w_grad: float = 1.0, w_color: float = 0.5
) -> DCPObjective:
    return DCPObjective(patch=patch, w_dark=w_dark, w_fid=w_fid, w_grad=w_grad, w_color=w_color)
