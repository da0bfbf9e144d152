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


def _quadratic(n: int = 6, seed: int = 2):
    """f(w, a) = 0.5 w^T H w - w^T (C a): mixed(p) = (C^T p, H p) exactly."""
    gen = torch.Generator().manual_seed(seed)
    Q = torch.randn(n, n, generator=gen, dtype=torch.float64)
    H = Q @ Q.T + 0.5 * torch.eye(n, dtype=torch.float64)
    C = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    calls = []

    def mixed(p):
        calls.append(1)
        return [-C.T @ p[0]], [H @ p[0]]

    return H, C, mixed, calls


def test_cg_reaches_the_exact_implicit_hypergradient_on_a_quadratic() -> None:
    H, C, mixed, calls = _quadratic()
    dF_da, dF_dw = [_t(0.3, -0.1, 0.2)], [torch.arange(6, dtype=torch.float64) - 2.0]
    damping = 0.1
    v_exact = torch.linalg.solve(H + damping * torch.eye(6, dtype=torch.float64), dF_dw[0])
    g, v = hg.cg(dF_da, dF_dw, mixed, iters=6, damping=damping)
    torch.testing.assert_close(v[0], v_exact)
    torch.testing.assert_close(g[0], dF_da[0] + C.T @ v_exact)  # dF/da - (d2f/da dw) v, d2f/da dw = -C^T
    assert len(calls) == 6
    fewer, _ = hg.cg(dF_da, dF_dw, mixed, iters=2, damping=damping)
    assert 0.5 < hg.cosine(fewer, g) < 0.999999  # 2 products: an approximation, not the answer


def test_cg_warm_start_at_the_solution_needs_one_product() -> None:
    H, C, mixed, calls = _quadratic()
    b = [torch.ones(6, dtype=torch.float64)]
    v_exact = torch.linalg.solve(H, b[0])
    g, v = hg.cg([torch.zeros(3, dtype=torch.float64)], b, mixed, iters=3, x0=[v_exact])
    assert len(calls) == 1  # the residual is 0: nothing left to solve
    torch.testing.assert_close(v[0], v_exact)
    torch.testing.assert_close(g[0], C.T @ v_exact)


def test_cg_stops_at_negative_curvature() -> None:
    mixed = lambda p: ([p[0][:1] * 0], [-p[0]])  # H = -I: CG must not step
    g, v = hg.cg([_t(1.0)], [_t(1.0, 2.0)], mixed, iters=3)
    torch.testing.assert_close(v[0], _t(0.0, 0.0))
    torch.testing.assert_close(g[0], _t(1.0))


@pytest.mark.parametrize("history", [0, 3])
def test_adam_effective_lr_predicts_the_next_adam_step(history: int) -> None:
    gen = torch.Generator().manual_seed(3)
    p = torch.nn.Parameter(torch.randn(20, generator=gen))
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99))
    for _ in range(history):  # build up moment state (0: the very first step, no state yet)
        p.grad = torch.randn(20, generator=gen) * 1e-3
        opt.step()
    g = torch.randn(20, generator=gen) * 1e-3
    xi = hg.adam_effective_lr(opt, [g])
    before = p.detach().clone()
    p.grad = g.clone()
    opt.step()
    update = before - p.detach()
    assert xi == pytest.approx(float(update @ g / (g @ g)), rel=1e-4)
    assert xi > 1.0  # Adam steps ~lr per coordinate: on gradients of 1e-3 that is a virtual step >> lr


def test_cosine_of_a_zero_gradient_is_zero() -> None:
    assert hg.cosine([_t(0.0, 0.0)], [_t(1.0, 2.0)]) == 0.0
    assert hg.cosine([_t(1.0, 2.0)], [_t(-2.0, -4.0)]) == pytest.approx(-1.0)
