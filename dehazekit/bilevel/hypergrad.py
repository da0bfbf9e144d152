"""Hypergradients for the gate logits alpha, as pure functions on flat gradient lists.

Notation: F = upper loss (S_alpha batch), f = lower loss (S_w batch), both at the current (w, alpha).
The exact hypergradient is dF/dalpha - d2f/(dalpha dw) [d2f/dw2]^-1 dF/dw (implicit function theorem).

- rank1 (ours, the paper's): approximate both second-order terms by the Gauss-Newton outer products of
  the lower gradient, giving  g = dF/dalpha - (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha.
- first-order: g = dF/dalpha (drops the implicit term).
- reference: the public code's formula, kept only to measure the difference:
  g = dF/dalpha + lr_w * (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha  (sign flipped, scaled by lr_w).
- unrolled: DARTS second order, g = dF/dalpha(w') - xi * [df/dalpha(w+) - df/dalpha(w-)] / (2 r), with
  w' = w - xi df/dw, w+- = w +- r dF/dw(w'), by finite differences (needs gradient callables).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Grads = list[Tensor]
# A closure returning (grads w.r.t. alpha, grads w.r.t. w) of one loss at the CURRENT parameter values.
GradFn = Callable[[], tuple[Grads, Grads]]

METHODS = ("rank1", "first-order", "unrolled", "reference")


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Inner product of two gradient lists viewed as one flat vector."""
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def sq_norm(a: Sequence[Tensor]) -> Tensor:
    return dot(a, a)


def implicit_coefficient(dF_dw: Sequence[Tensor], df_dw: Sequence[Tensor], eps: float = 1e-8) -> Tensor:
    """<dF/dw, df/dw> / (||df/dw||^2 + eps): the scalar of the rank-one implicit term."""
    return dot(dF_dw, df_dw) / (sq_norm(df_dw) + eps)


def rank1(dF_dalpha: Sequence[Tensor], dF_dw: Sequence[Tensor], df_dalpha: Sequence[Tensor],
          df_dw: Sequence[Tensor], eps: float = 1e-8) -> Grads:
    """g_alpha = dF/dalpha - (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha."""
    coef = implicit_coefficient(dF_dw, df_dw, eps)
    return [gF - coef * gf for gF, gf in zip(dF_dalpha, df_dalpha, strict=True)]


def first_order(dF_dalpha: Sequence[Tensor]) -> Grads:
    """g_alpha = dF/dalpha."""
    return [g.clone() for g in dF_dalpha]


def reference(dF_dalpha: Sequence[Tensor], dF_dw: Sequence[Tensor], df_dalpha: Sequence[Tensor],
              df_dw: Sequence[Tensor], lr_w: float, eps: float = 1e-8) -> Grads:
    """The public BiLaLoRA code's formula: dF/dalpha + lr_w * coef * df/dalpha (sign flipped, lr-scaled)."""
    coef = implicit_coefficient(dF_dw, df_dw, eps)
    return [gF + lr_w * coef * gf for gF, gf in zip(dF_dalpha, df_dalpha, strict=True)]


@torch.no_grad()
def _axpy(params: Sequence[Tensor], direction: Sequence[Tensor], scale: float) -> None:
    for p, d in zip(params, direction, strict=True):
        p.add_(d, alpha=scale)


def unrolled(w_params: Sequence[Tensor], upper: GradFn, lower: GradFn, xi: float, r: float = 0.01) -> Grads:
    """DARTS second-order hypergradient by finite differences; ``w_params`` are restored on return.

    ``upper()``/``lower()`` evaluate F/f gradients at the parameters' current values. ``xi`` is the
    virtual lower step size (the lower learning rate); ``r`` sets the finite-difference radius
    r / ||dF/dw(w')|| as in DARTS.
    """
    originals = [p.detach().clone() for p in w_params]
    try:
        _, df_dw = lower()
        _axpy(w_params, df_dw, -xi)  # virtual step w' = w - xi * df/dw
        dF_dalpha_virtual, dF_dw_virtual = upper()
        _restore(w_params, originals)
        radius = r / (float(sq_norm(dF_dw_virtual).sqrt()) + 1e-12)
        _axpy(w_params, dF_dw_virtual, radius)
        df_dalpha_plus, _ = lower()
        _axpy(w_params, dF_dw_virtual, -2 * radius)
        df_dalpha_minus, _ = lower()
    finally:
        _restore(w_params, originals)
    return [g - xi * (gp - gm) / (2 * radius)
            for g, gp, gm in zip(dF_dalpha_virtual, df_dalpha_plus, df_dalpha_minus, strict=True)]


@torch.no_grad()
def _restore(params: Sequence[Tensor], values: Sequence[Tensor]) -> None:
    for p, v in zip(params, values, strict=True):
        p.copy_(v)


def cosine(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """Cosine similarity of two gradient lists (0 when either is zero)."""
    den = float(sq_norm(a).sqrt() * sq_norm(b).sqrt())
    return float(dot(a, b)) / den if den > 0 else 0.0
