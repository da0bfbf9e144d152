"""BILD: the finite-difference directional terms equal per-patch gradient inner products; a run works."""

from __future__ import annotations

import numpy as np
import torch

from dehazekit.backbones import create_backbone
from dehazekit.train.bild import BildConfig, BildReweighter, neg_entropy_grad


class _Batches:
    def __init__(self, size: int = 24) -> None:
        self.size = size

    def batch(self, rng, n):
        g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
        clear = torch.rand(n, 3, self.size, self.size, generator=g)
        return clear * 0.4 + 0.5, clear, [{}] * n


def _l1(pred, target):
    return (pred - target).abs().mean(dim=(1, 2, 3))


def _l2(pred, target):
    # Smooth loss for the exactness check: L1's kinks make any finite difference an approximation.
    return ((pred - target) ** 2).mean(dim=(1, 2, 3))


def test_directional_terms_match_autograd_inner_products():
    torch.manual_seed(0)
    model = create_backbone("tiny-gunet").double()
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    y = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    direction = [torch.randn_like(p) for p in params]
    rw = BildReweighter(BildConfig(fd_step=1e-6), _Batches(), 3)
    theta = [p.detach().clone() for p in params]
    fd = rw._directional(model, params, theta, direction, x, y, _l2)
    exact = []
    for i in range(3):
        with torch.random.fork_rng():
            per = _l2(model(x), y)
        grads = torch.autograd.grad(per[i], params)
        exact.append(sum((g * d).sum() for g, d in zip(grads, direction)))
    torch.testing.assert_close(fd, torch.stack(exact), rtol=1e-5, atol=1e-9)
    for p, t in zip(params, theta):  # parameters restored exactly
        assert torch.equal(p, t)


def test_neg_entropy_gradient_pushes_toward_uniform():
    w = torch.tensor([0.9, 0.1, 0.5])
    g = neg_entropy_grad(w)
    # dOmega/dw is largest for the heaviest weight, so "- a dOmega/dw" lowers it the most.
    assert g.argmax() == 0 and g.argmin() == 1
    torch.testing.assert_close(neg_entropy_grad(torch.ones(4)), torch.zeros(4))


def test_step_updates_theta_and_phi():
    torch.manual_seed(0)
    model = create_backbone("tiny-gunet")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rw = BildReweighter(BildConfig(lr=1e-2), _Batches(), 4)
    phi0 = [p.detach().clone() for p in rw.net.parameters()]
    theta0 = [p.detach().clone() for p in model.parameters()]
    hazy, clear, _ = _Batches().batch(np.random.default_rng(1), 4)
    loss = rw.step(model, opt, hazy, clear, _l1)
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(phi0, rw.net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(theta0, model.parameters()))
    assert rw.last["weights"].shape == (4,) and torch.isfinite(rw.last["dots"]).all()
