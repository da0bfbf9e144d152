"""Contracts of one search / fine-tune step that the wiring tests do not see (found by
benchmarks/mutants.py): the gradient clipping helper behaves like torch's clip_grad_norm_ at every gradient
scale, and a step leaves no gradient behind on the model it trains."""

from __future__ import annotations

import pytest
import torch

from dehazekit.backbones import candidate_blocks, create_backbone, list_backbones
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig
from dehazekit.bilevel.search import clipped
from dehazekit.lora import gates_of, inject_lora

BACKBONE = "tiny-gunet" if "tiny-gunet" in list_backbones() else None


def _objective(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return (out - (hazy - 0.2) * 1.3).square().mean()


@pytest.mark.parametrize("norm", [0.0, 1e-9, 1e-7, 1e-3, 0.9, 1.0, 3.0, 1e4])
def test_clipped_scales_like_clip_grad_norm_and_never_turns_a_gradient_around(norm: float) -> None:
    # clipped() predicts the lower step Adam will take (unrolled's virtual step); it must scale exactly as the
    # real clip_grad_norm_ does, tiny gradients included, and only ever shrink a gradient, never reverse it.
    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    total = float(torch.cat([d.flatten() for d in direction]).norm())
    grads = [d * (norm / total) for d in direction]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)

    out = clipped(grads, 1.0)

    for got, want, g in zip(out, params, grads):
        torch.testing.assert_close(got, want.grad, rtol=1e-6, atol=0.0)
        assert float((got * g).sum()) >= 0.0  # same direction (or zero), never the opposite
    assert float(torch.cat([o.flatten() for o in out]).norm()) <= max(norm, 0.0) * (1 + 1e-6)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_backbone(BACKBONE)
    inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    return model


def _leftover_grads(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is not None]


@pytest.mark.skipif(BACKBONE is None, reason="tiny-gunet not registered")
def test_search_and_finetune_steps_leave_no_gradient_on_the_model() -> None:
    # A stale .grad left on a gate or LoRA tensor would be added to by the next backward() a caller runs on
    # the adapted model (gradients accumulate in .grad) and keeps memory alive; each step clears what it set.
    model = _model()
    gen = torch.Generator().manual_seed(1)
    batch_alpha, batch_w = (torch.rand(1, 3, 16, 16, generator=gen) for _ in range(2))
    search = BilevelSearch(model, _objective, SearchConfig(lr_w=1e-3, lr_alpha=0.05))
    search.upper_step(batch_alpha, batch_w)
    assert _leftover_grads(model) == [], "upper_step"
    search.lower_step(batch_w)
    assert _leftover_grads(model) == [], "lower_step"
    selected = sorted(search.gate_values())[:1]
    FineTuner(model, _objective, selected, FinetuneConfig(lr=1e-3)).step(batch_w)
    assert _leftover_grads(model) == [], "fine-tune step"


def test_unrolled_finite_difference_is_central_exact_for_a_quadratic_mixed_derivative() -> None:
    # f has a mixed term sum_i w_i^2 (N a)_i / 2, so df/da is quadratic in w: its central difference is exact
    # at any radius, a one-sided one is off by O(radius). A large r makes the difference visible.
    from dehazekit.bilevel import hypergrad as hg

    gen = torch.Generator().manual_seed(3)
    M, N = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    t = torch.randn(4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    a = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    lower_loss = lambda w_, a_: 0.5 * (w_ - M @ a_).square().sum() + (w_.square() * (N @ a_)).sum() / 2
    upper_loss = lambda w_, a_: (w_ - t).square().sum() + 0.5 * a_.square().sum()

    def grads(loss_fn):
        return lambda: tuple([g] for g in torch.autograd.grad(loss_fn(w, a), [a, w]))

    xi = 0.05
    got = hg.unrolled([w], grads(upper_loss), grads(lower_loss), xi=xi, r=0.3)[0]
    # DARTS' second-order estimate written out exactly: dF/da(w') - xi * d2f/(da dw)(w) . dF/dw(w')
    w_virtual = (w - xi * torch.autograd.grad(lower_loss(w, a), w)[0]).detach().requires_grad_(True)
    dF_da, dF_dw = torch.autograd.grad(upper_loss(w_virtual, a), [a, w_virtual])
    g_w = torch.autograd.grad(lower_loss(w, a), w, create_graph=True)[0]
    mixed = torch.autograd.grad(g_w, a, grad_outputs=dF_dw)[0]
    torch.testing.assert_close(got, dF_da - xi * mixed, atol=1e-9, rtol=1e-7)


@pytest.mark.skipif(BACKBONE is None, reason="tiny-gunet not registered")
def test_unrolled_scores_the_virtual_step_with_F_not_with_the_lower_levels_weight_decay() -> None:
    # F (upper level) is the objective on batch_alpha; the decay on B belongs to f only. The reported
    # upper_loss is F at w' = w - xi df/dw, recomputed here by hand.
    from dehazekit.backbones import forward_padded
    from dehazekit.lora import lora_parameters
    from tests.dehazekit.lora.toy_nets import randomize_lora

    wd, xi = 0.5, 0.05
    model = _model().eval()  # the search runs the frozen backbone in eval mode (BatchNorm statistics)
    randomize_lora(model, scale=0.5)
    gen = torch.Generator().manual_seed(2)
    batch_alpha, batch_w = (torch.rand(1, 3, 16, 16, generator=gen) for _ in range(2))
    w = lora_parameters(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in w.values():
        p.requires_grad_(True)
    decay = sum(p.square().sum() for n, p in w.items() if n.endswith(".lora_B"))
    f = _objective(batch_w, forward_padded(model, batch_w)) + 0.5 * wd * decay
    step = torch.autograd.grad(f, list(w.values()))
    original = {n: p.detach().clone() for n, p in w.items()}
    with torch.no_grad():
        for p, g in zip(w.values(), step):
            p.sub_(xi * g)
        expected = float(_objective(batch_alpha, forward_padded(model, batch_alpha)))
        for n, p in w.items():
            p.copy_(original[n])
    config = SearchConfig(hypergrad="unrolled", unrolled_xi=xi, weight_decay_w=wd, lr_w=1e-3)
    stats = BilevelSearch(model, _objective, config).upper_step(batch_alpha, batch_w)
    assert stats["upper_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("betas", [(0.9,), (0.9, 0.99, 0.5), (0.9, 1.0)])
def test_search_config_refuses_betas_that_are_not_two_values_in_0_1(betas: tuple) -> None:
    from dehazekit.runtimes.errors import ConfigError

    with pytest.raises(ConfigError, match="betas_alpha"):
        SearchConfig(betas_alpha=betas)


def test_cg_refuses_a_warm_start_that_does_not_match_the_right_hand_side() -> None:
    # a warm start left over from another parameter list (e.g. a different adapter) must be an error, not
    # silently zipped down to the shorter list
    from dehazekit.bilevel import hypergrad as hg

    def mixed(p):  # a diagonal Hessian that accepts any list length (cross term: none of interest)
        return [torch.zeros(1, dtype=torch.float64)], [2.0 * q for q in p]

    b = [torch.ones(3, dtype=torch.float64)]
    stale = [torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    with pytest.raises(ValueError):
        hg.cg_solve(mixed, b, iters=1, x0=stale)


def test_an_empty_selection_never_scores_as_a_perfect_one() -> None:
    from dehazekit.bilevel import precision_at_k

    assert precision_at_k([], ["a", "b"]) == 0.0  # it found none of the relevant blocks


@pytest.mark.skipif(BACKBONE is None, reason="tiny-gunet not registered")
def test_fine_tune_steps_are_numbered_from_one() -> None:
    # the step number goes to callbacks, checkpoints and the guard; N steps must report 1..N
    model = _model()
    gen = torch.Generator().manual_seed(4)
    batches = [torch.rand(1, 3, 16, 16, generator=gen) for _ in range(2)]
    tuner = FineTuner(model, _objective, [sorted(gates_of(model))[0]], FinetuneConfig(lr=1e-3))
    assert [s["step"] for s in tuner.run(batches, 2)] == [1, 2]
    assert tuner.step_count == 2
