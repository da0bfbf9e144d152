"""BILD: bi-level patch reweighting (Jiang et al., "Boosting supervised dehazing methods via bi-level
patch reweighting").

A small weighting network f_w(x, y; phi) gives training patch i a weight w_i = sigmoid(f_w). Each step:

  inner  theta_t = theta_{t-1} - Adam(grad_theta sum_i p_i l_i(theta_{t-1})),  p_i = w_i / sum_j w_j
  outer  R_i = w_i [ grad_theta J_val(theta_t)^T grad_theta l_i(theta_{t-1}) - a dOmega/dw_i ]
         phi <- phi + lr * mean_i R_i grad_phi log w_i         (policy-gradient form)

J_val is the mean loss on a batch from a held-out split. Omega = sum_i p_i log p_i is the NEGATIVE
entropy of the batch weights, so the "- a dOmega/dw_i" term raises the entropy and keeps the weights
from collapsing onto a few patches. The phi step direction is the paper's; it is handed to Adam so that
lr does not have to track the (tiny, drifting) scale of the gradient inner products.

Cost of the per-patch inner products g_val . g_i: computing B per-sample gradients would take B
backward passes. Instead: ONE backward for g_val = grad J_val(theta_t), then all B directional
derivatives at once by a central finite difference along g_val,
    g_i . g_val ~= [l_i(theta_{t-1} + h g_val) - l_i(theta_{t-1} - h g_val)] / (2 h),
i.e. two extra no-grad forwards of the training batch. Per step: 1 train fwd+bwd (inner), 1 val
fwd+bwd, 2 train forwards, plus the weight net -- about 2.5x a plain step, independent of B.
BatchNorm running statistics are restored after the extra forwards so only the inner step updates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dehazekit.runtimes.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pred, target) -> (B,) per-patch loss


@dataclass
class BildConfig:
    lr: float = 1e-3
    entropy_weight: float = 1e-3  # a in R_i
    fd_step: float = 1e-2  # finite-difference step as a fraction of ||theta|| / ||g_val||
    width: int = 16

    def __post_init__(self) -> None:
        if not (0 < self.lr < 1) or self.entropy_weight < 0 or not (0 < self.fd_step < 1) or self.width < 1:
            raise ConfigError.build(
                "BildConfig out of range",
                got=self.__dict__,
                expected="0<lr<1, entropy_weight>=0, 0<fd_step<1, width>=1",
            )


class WeightNet(nn.Module):
    """f_w(x, y; phi): hazy (B,3,H,W), clear (B,3,H,W) -> (B,) weight logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(9, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 1),
        )

    def forward(self, hazy: torch.Tensor, clear: torch.Tensor) -> torch.Tensor:
        # The difference image is given explicitly: it is where haze density shows.
        return self.body(torch.cat([hazy, clear, hazy - clear], dim=1)).squeeze(1)


def neg_entropy_grad(w: torch.Tensor) -> torch.Tensor:
    """dOmega/dw for Omega = sum p log p, p = w / sum w."""
    w = w.detach().clone().requires_grad_(True)
    p = w / w.sum()
    omega = (p * torch.log(p.clamp_min(1e-12))).sum()
    (grad,) = torch.autograd.grad(omega, w)
    return grad


class _KeepBuffers:
    """Restore BatchNorm running stats after forwards that must not count as training."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.saved = {k: v.clone() for k, v in self.model.named_buffers()}

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for k, v in self.model.named_buffers():
                v.copy_(self.saved[k])


class BildReweighter:
    """Holds phi and its optimiser; ``step`` performs one inner + one outer update."""

    def __init__(self, cfg: BildConfig, outer_data: Any, batch_size: int, seed: int = 0) -> None:
        self.cfg = cfg
        self.net = WeightNet(cfg.width)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.outer_data = outer_data
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.last: dict[str, torch.Tensor] = {}

    def weights(self, hazy: torch.Tensor, clear: torch.Tensor) -> torch.Tensor:
        """(B,) weights in (0, 1) (no grad)."""
        with torch.no_grad():
            return torch.sigmoid(self.net(hazy, clear))

    def _directional(
        self,
        model: nn.Module,
        params: list[nn.Parameter],
        theta_prev: list[torch.Tensor],
        direction: list[torch.Tensor],
        hazy: torch.Tensor,
        clear: torch.Tensor,
        loss_fn: LossFn,
    ) -> torch.Tensor:
        """(B,) grad l_i(theta_prev) . direction by central differences (two batch forwards)."""
        d_norm = torch.sqrt(sum((d**2).sum() for d in direction)).clamp_min(1e-20)
        t_norm = torch.sqrt(sum((t**2).sum() for t in theta_prev))
        h = float(self.cfg.fd_step * max(float(t_norm), 1.0) / d_norm)
        theta_now = [p.detach().clone() for p in params]
        losses = []
        with torch.no_grad(), _KeepBuffers(model):
            for sign in (1.0, -1.0):
                for p, t, d in zip(params, theta_prev, direction):
                    p.copy_(t + sign * h * d)
                losses.append(loss_fn(model(hazy), clear))
            for p, t in zip(params, theta_now):
                p.copy_(t)
        return (losses[0] - losses[1]) / (2 * h)

    def step(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        hazy: torch.Tensor,
        clear: torch.Tensor,
        loss_fn: LossFn,
    ) -> float:
        params = [p for p in model.parameters() if p.requires_grad]
        logits = self.net(hazy, clear)
        w = torch.sigmoid(logits)
        p_norm = (w / w.sum()).detach()
        # inner: weighted loss updates theta_{t-1} -> theta_t
        theta_prev = [p.detach().clone() for p in params]
        per = loss_fn(model(hazy), clear)
        inner = (p_norm * per).sum()
        opt.zero_grad(set_to_none=True)
        inner.backward()
        opt.step()
        # outer: one backward for grad J_val(theta_t), then per-patch directional terms at theta_{t-1}
        vh, vc, _ = self.outer_data.batch(self.rng, self.batch_size)
        with _KeepBuffers(model):
            j_val = loss_fn(model(vh), vc).mean()
            g_val = torch.autograd.grad(j_val, params, allow_unused=True)
        g_val = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, g_val)]
        dots = self._directional(model, params, theta_prev, g_val, hazy, clear, loss_fn)
        reward = w.detach() * (dots - self.cfg.entropy_weight * neg_entropy_grad(w))
        phi_loss = -(reward * torch.nn.functional.logsigmoid(logits)).mean()  # ascent on mean R_i log w_i
        self.opt.zero_grad(set_to_none=True)
        phi_loss.backward()
        self.opt.step()
        self.last = {"weights": w.detach(), "dots": dots.detach(), "reward": reward}
        return float(inner.detach())

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.rng.bit_generator.state = state["rng"]
