"""Hypergradient formulas: rank1 against a hand computation, 'reference' vs rank1, unrolled vs autograd."""
from __future__ import annotations

import pytest
import torch

from dehazekit.bilevel import hypergrad as hg


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_rank1_matches_hand_computation() -> None:
    dF_da, df_da = [_t(1.0, -2.0)], [_t(0.5, 4.0)]
    dF_dw, df_dw = [_t(1.0, 2.0), _t(3.0)], [_t(2.0, 0.0), _t(-1.0)]
    # <dF/dw, df/dw> = 1*2 + 2*0 + 3*(-1) = -1 ; ||df/dw||^2 = 4 + 0 + 1 = 5 ; coef = -0.2
    # rank1 = dF/da - coef * df/da = (1 + 0.1, -2 + 0.8)
    out = hg.rank1(dF_da, dF_dw, df_da, df_dw, eps=0.0)
    torch.testing.assert_close(out[0], _t(1.1, -1.2))
    assert hg.implicit_coefficient(dF_dw, df_dw, eps=0.0).item() == pytest.approx(-0.2)
    torch.testing.assert_close(hg.first_order(dF_da)[0], dF_da[0])


def test_reference_flips_sign_and_scales_by_lr() -> None:
    gen = torch.Generator().manual_seed(0)
    dF_da, df_da = [torch.randn(5, generator=gen)], [torch.randn(5, generator=gen)]
    dF_dw, df_dw = [torch.randn(7, generator=gen)], [torch.randn(7, generator=gen)]
    lr_w = 1e-4
    r1 = hg.rank1(dF_da, dF_dw, df_da, df_dw)[0] - dF_da[0]
    ref = hg.reference(dF_da, dF_dw, df_da, df_dw, lr_w=lr_w)[0] - dF_da[0]
    assert r1.abs().max() > 1e-3
    # the reference implicit term is the rank1 one times -lr_w: opposite sign, 1e4 times smaller here
    torch.testing.assert_close(ref, -lr_w * r1)
    assert hg.cosine([ref], [r1]) == pytest.approx(-1.0, abs=1e-4)


def test_zero_lower_gradient_is_safe() -> None:
    out = hg.rank1([_t(1.0)], [_t(1.0)], [_t(2.0)], [_t(0.0)])
    torch.testing.assert_close(out[0], _t(1.0))


def test_unrolled_matches_autograd_second_order() -> None:
    # f(w, a) = 0.5 ||w - M a||^2 + 0.1 sum(w^4);  F(w, a) = ||w - t||^2 + 0.5 ||a||^2 (all smooth)
    gen = torch.Generator().manual_seed(1)
    M = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    t = torch.randn(4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    a = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    lower_loss = lambda w_, a_: 0.5 * (w_ - M @ a_).square().sum() + 0.1 * w_.pow(4).sum()
    upper_loss = lambda w_, a_: (w_ - t).square().sum() + 0.5 * a_.square().sum()

    def grads(loss_fn):
        return lambda: tuple([g] for g in torch.autograd.grad(loss_fn(w, a), [a, w]))

    xi = 0.05
    got = hg.unrolled([w], grads(upper_loss), grads(lower_loss), xi=xi, r=1e-4)[0]
    g_w = torch.autograd.grad(lower_loss(w, a), w, create_graph=True)[0]
    expected = torch.autograd.grad(upper_loss(w - xi * g_w, a), a)[0]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert hg.cosine([got], [expected]) > 0.999999
