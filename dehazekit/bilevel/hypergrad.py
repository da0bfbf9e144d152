"""Hypergradients for the gate logits alpha, as pure functions on flat gradient lists.

Notation: F = upper loss (S_alpha batch), f = lower loss (S_w batch), both at the current (w, alpha).
The exact hypergradient is dF/dalpha - d2f/(dalpha dw) [d2f/dw2]^-1 dF/dw (implicit function theorem).

- rank1 (ours, the paper's): approximate both second-order terms by the Gauss-Newton outer products of
  the lower gradient, giving  g = dF/dalpha - (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha.
- first-order: g = dF/dalpha (drops the implicit term).
- reference: the public code's formula, kept only to measure the difference:
  g = dF/dalpha + lr_w * (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha  (sign flipped, scaled by lr_w).
- unrolled: DARTS second order, g = dF/dalpha(w') - xi * [df/dalpha(w+) - df/dalpha(w-)] / (2 r), with
  w' = w - xi df/dw, w+- = w +- r dF/dw(w'), by finite differences (needs gradient callables). Under
  Adam the virtual step xi should be the optimiser's effective step along df/dw (``adam_effective_lr``),
  not its learning rate: Adam's steps are ~lr per coordinate whatever the gradient's scale.
- cg: the implicit term with v = [d2f/dw2 + damping I]^-1 dF/dw solved by conjugate gradients with a
  few Hessian-vector products, g = dF/dalpha - d2f/(dalpha dw) v. Each product is one double backward
  that yields d/dalpha <df/dw, p> and d/dw <df/dw, p> together, so the cross term costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dehazekit.bilevel.methods import DEFAULT_METHOD, METHODS  # noqa: F401  (re-exported)

Grads = list[Tensor]
# A closure returning (grads w.r.t. alpha, grads w.r.t. w) of one loss at the CURRENT parameter values.
GradFn = Callable[[], tuple[Grads, Grads]]

# A closure p -> (d/dalpha <df/dw, p>, d/dw <df/dw, p>): the mixed and the Hessian-vector product of f.
MixedFn = Callable[[Grads], tuple[Grads, Grads]]


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Inner product of two gradient lists viewed as one flat vector."""
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def sq_norm(a: Sequence[Tensor]) -> Tensor:
    return dot(a, a)


def implicit_coefficient(dF_dw: Sequence[Tensor], df_dw: Sequence[Tensor], eps: float = 1e-8) -> Tensor:
    """<dF/dw, df/dw> / (||df/dw||^2 + eps): the scalar of the rank-one implicit term."""
    return dot(dF_dw, df_dw) / (sq_norm(df_dw) + eps)


def rank1(
    dF_dalpha: Sequence[Tensor],
    dF_dw: Sequence[Tensor],
    df_dalpha: Sequence[Tensor],
    df_dw: Sequence[Tensor],
    eps: float = 1e-8,
) -> Grads:
    """g_alpha = dF/dalpha - (<dF/dw, df/dw> / (||df/dw||^2 + eps)) * df/dalpha."""
    coef = implicit_coefficient(dF_dw, df_dw, eps)
    return [gF - coef * gf for gF, gf in zip(dF_dalpha, df_dalpha, strict=True)]


def first_order(dF_dalpha: Sequence[Tensor]) -> Grads:
    """g_alpha = dF/dalpha."""
    return [g.clone() for g in dF_dalpha]


def reference(
    dF_dalpha: Sequence[Tensor],
    dF_dw: Sequence[Tensor],
    df_dalpha: Sequence[Tensor],
    df_dw: Sequence[Tensor],
    lr_w: float,
    eps: float = 1e-8,
) -> Grads:
    """The public BiLaLoRA code's formula: dF/dalpha + lr_w * coef * df/dalpha (sign flipped, lr-scaled)."""
    coef = implicit_coefficient(dF_dw, df_dw, eps)
    return [gF + lr_w * coef * gf for gF, gf in zip(dF_dalpha, df_dalpha, strict=True)]


@torch.no_grad()
def _axpy(params: Sequence[Tensor], direction: Sequence[Tensor], scale: float) -> None:
    for p, d in zip(params, direction, strict=True):
        p.add_(d, alpha=scale)


def unrolled(
    w_params: Sequence[Tensor],
    upper: GradFn,
    lower: GradFn,
    xi: float,
    r: float = 0.01,
    df_dw: Sequence[Tensor] | None = None,
) -> Grads:
    """DARTS second-order hypergradient by finite differences; ``w_params`` are restored on return.

    ``upper()``/``lower()`` evaluate F/f gradients at the parameters' current values. ``xi`` is the
    virtual lower step size; ``r`` sets the finite-difference radius r / ||dF/dw(w')|| as in DARTS.
    ``df_dw`` at the current point may be passed in when the caller has it (saves one evaluation).
    """
    originals = [p.detach().clone() for p in w_params]
    try:
        if df_dw is None:
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
    return [
        g - xi * (gp - gm) / (2 * radius)
        for g, gp, gm in zip(dF_dalpha_virtual, df_dalpha_plus, df_dalpha_minus, strict=True)
    ]


def adam_effective_lr(
    optimizer: torch.optim.Optimizer, grads: Sequence[Tensor], step_grads: Sequence[Tensor] | None = None
) -> float:
    """The scalar step xi with which Adam's next update best matches -xi * grads (least squares).

    ``optimizer`` is a torch Adam over exactly the tensors ``grads`` belong to (one param group);
    ``step_grads`` are the gradients Adam will actually see (e.g. after clipping; default ``grads``).
    Nothing is changed. Returns <update, grads> / ||grads||^2 (0 when grads vanish).
    """
    group = optimizer.param_groups[0]
    (b1, b2), eps, lr = group["betas"], group["eps"], group["lr"]
    step_grads = grads if step_grads is None else step_grads
    num = torch.zeros((), dtype=torch.float64)
    for p, g, gs in zip(group["params"], grads, step_grads, strict=True):
        state = optimizer.state.get(p, {})
        t = float(state["step"]) + 1 if "step" in state else 1.0
        m = b1 * state["exp_avg"] + (1 - b1) * gs if "exp_avg" in state else (1 - b1) * gs
        v = b2 * state["exp_avg_sq"] + (1 - b2) * gs * gs if "exp_avg_sq" in state else (1 - b2) * gs * gs
        update = lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        num += (update * g).sum().double()
    den = float(sq_norm(grads))
    return float(num) / den if den > 0 else 0.0


def cg_solve(
    mixed: MixedFn, b: Sequence[Tensor], iters: int, damping: float = 0.0, x0: Sequence[Tensor] | None = None
) -> tuple[Grads, Grads | None]:
    """Approximately solve (H + damping I) x = b by conjugate gradients with ``iters`` >= 1 products.

    Returns (x, C x) where C x = d/dalpha <df/dw, x> is accumulated from the same products (it is
    linear in x); C x is None when x = 0. A warm start ``x0`` spends one product on its residual.
    Stops at non-positive curvature (H is not PSD away from a lower minimum), keeping the iterate so far.
    """

    def product(p: Sequence[Tensor]) -> tuple[Grads, Grads]:
        cross, hv = mixed(list(p))
        return cross, [h + damping * q for h, q in zip(hv, p, strict=True)]

    residual = [t.detach().clone() for t in b]
    x, cross_x, used = [torch.zeros_like(t) for t in b], None, 0
    if x0 is not None:
        x = [t.detach().clone() for t in x0]
        cross_x, ax = product(x)
        residual, used = [t - a for t, a in zip(residual, ax, strict=True)], 1
    direction, rr = [t.clone() for t in residual], sq_norm(residual)
    solved = 1e-20 * float(sq_norm(b))  # residual at rounding level: another product cannot help
    while used < iters and float(rr) > solved:
        cross_p, ap = product(direction)
        used += 1
        curvature = dot(direction, ap)
        if not float(curvature) > 0:
            break
        step = rr / curvature
        x = _plus(x, direction, step)
        cross_x = _plus(cross_x, cross_p, step)
        residual = _plus(residual, ap, -step)
        rr_new = sq_norm(residual)
        direction = _plus(residual, direction, rr_new / rr)
        rr = rr_new
    return x, cross_x


def _plus(a: Sequence[Tensor] | None, b: Sequence[Tensor], scale: Tensor | float) -> Grads:
    """a + scale * b, with a = None read as 0."""
    if a is None:
        return [scale * t for t in b]
    return [x + scale * y for x, y in zip(a, b, strict=True)]


def cg(
    dF_dalpha: Sequence[Tensor],
    dF_dw: Sequence[Tensor],
    mixed: MixedFn,
    iters: int,
    damping: float = 0.0,
    x0: Sequence[Tensor] | None = None,
) -> tuple[Grads, Grads]:
    """(g_alpha, v): g_alpha = dF/dalpha - d2f/(dalpha dw) v with v ~ (H + damping I)^-1 dF/dw by CG."""
    v, cross = cg_solve(mixed, dF_dw, iters, damping, x0)
    if cross is None:
        return first_order(dF_dalpha), v
    return [gF - c for gF, c in zip(dF_dalpha, cross, strict=True)], v


@torch.no_grad()
def _restore(params: Sequence[Tensor], values: Sequence[Tensor]) -> None:
    for p, v in zip(params, values, strict=True):
        p.copy_(v)


def cosine(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """Cosine similarity of two gradient lists (0 when either is zero)."""
    den = float(sq_norm(a).sqrt() * sq_norm(b).sqrt())
    return float(dot(a, b)) / den if den > 0 else 0.0
