"""Contracts of one search / fine-tune step that the wiring tests do not see (found by
benchmarks/mutants.py): the gradient clipping helper behaves like torch's clip_grad_norm_ at every gradient
scale, and a step leaves no gradient behind on the model it trains."""

from __future__ import annotations

import pytest
import torch

from dehazekit.backbones import candidate_blocks, create_backbone, list_backbones
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig
from dehazekit.bilevel.search import clipped
from dehazekit.lora import inject_lora

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
