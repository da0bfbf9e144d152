"""LoRA layer and injection contracts the behavioural tests did not pin (found by benchmarks/mutants.py): what
lora_alpha accepts, A's initial scale, a layer's own merge check, removing some gates, has_lora and an
unchecked merge."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dehazekit.backbones import create_backbone
from dehazekit.lora import LoRALinear, gates_of, has_lora, inject_lora, lora_layers, merge_lora, remove_gates
from dehazekit.runtimes.errors import ConfigError, NumericalError


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.inf, math.nan])
def test_lora_alpha_must_be_a_positive_finite_number(alpha: float) -> None:
    with pytest.raises(ConfigError, match="lora_alpha"):
        LoRALinear(nn.Linear(8, 8), rank=2, lora_alpha=alpha)


def test_a_starts_with_the_scale_of_a_fresh_linear_layer_of_the_same_fan_in() -> None:
    # loralib's init: A like nn.Linear's default weight (uniform within 1/sqrt(fan_in)), B zero
    torch.manual_seed(0)
    fan_in = 64
    layer = LoRALinear(nn.Linear(fan_in, 512), rank=64, lora_alpha=8.0)
    reference = nn.Linear(fan_in, 4096).weight
    bound = 1 / math.sqrt(fan_in)
    assert float(layer.lora_A.detach().abs().max()) <= bound + 1e-6
    assert float(layer.lora_A.detach().abs().max()) > 0.99 * float(reference.detach().abs().max())
    assert float(layer.lora_B.detach().abs().max()) == 0.0


def _with_delta(fill: float) -> LoRALinear:
    layer = LoRALinear(nn.Linear(4, 4), rank=2, lora_alpha=2.0)
    with torch.no_grad():
        layer.lora_B.fill_(fill)
    return layer


def test_a_layers_own_merge_folds_a_finite_delta_and_refuses_a_non_finite_one() -> None:
    layer = _with_delta(0.1)
    expected = layer.merged_weight().detach().clone()
    layer.merge()  # safe by default
    assert layer.merged and torch.equal(layer.base_layer.weight, expected)
    bad = _with_delta(math.inf)
    with pytest.raises(NumericalError):
        bad.merge()
    assert not bad.merged


def test_an_unchecked_merge_does_what_it_was_told(toy_backbone) -> None:
    # safe=False is the caller's explicit opt-out: no check, the (non-finite) delta is folded in
    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.fill_(math.inf)
    merge_lora(model, safe=False)
    assert not has_lora(model)


def test_removing_some_gates_leaves_the_others_gated_and_the_output_unchanged(toy_backbone) -> None:
    torch.manual_seed(0)
    model = create_backbone(toy_backbone, channels=4, depth=4).eval()
    gates = inject_lora(model, ["x1", "x2"], rank=2, lora_alpha=4.0)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.normal_()
        gates["x1"].alpha.fill_(0.7)
        gates["x2"].alpha.fill_(-1.2)
    x = torch.rand(1, 3, 16, 16)
    before = model(x)
    remove_gates(model, ["x1"])
    assert list(gates_of(model)) == ["x2"]
    assert all(layer.gate is gates["x2"] for _, layer in lora_layers(model) if layer.block == "x2")
    torch.testing.assert_close(model(x), before)


def test_lora_without_gates_still_counts_as_lora(toy_backbone) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    assert not has_lora(model)
    inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    remove_gates(model)  # plain (ungated) LoRA layers remain
    assert gates_of(model) == {} and has_lora(model)
