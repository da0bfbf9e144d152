"""LoRA layers, gates, injection, parameter selection, merge/unmerge parity and safe merge."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dehazekit.backbones import candidate_blocks, create_backbone, list_backbones
from dehazekit.lora import (
    Gate,
    LoRAConv2d,
    LoRALinear,
    gate_parameters,
    gate_values,
    gates_of,
    inject_lora,
    lora_layers,
    lora_parameters,
    merge_lora,
    remove_lora,
    scale_lora,
    unmerge_lora,
)
from dehazekit.runtimes.errors import ConfigError, NumericalError
from tests.dehazekit.lora.toy_nets import ConvZoo, randomize_lora

ZOO_BLOCKS = ["grouped", "reflect", "dilated", "strided", "nonsquare", "linear"]


def _zoo_with_blocks() -> nn.Module:
    # Each conv sits in its own one-layer block so every flavour gets its own gate.
    zoo = ConvZoo()
    for name in ZOO_BLOCKS:
        setattr(zoo, name, nn.Sequential(getattr(zoo, name)))
    return zoo


def test_conv_factor_shapes_follow_loralib() -> None:
    conv = nn.Conv2d(6, 8, (3, 5), groups=2)
    layer = LoRAConv2d(conv, rank=4, lora_alpha=8.0)
    assert layer.lora_A.shape == (4 * 3, 3 * 5)
    assert layer.lora_B.shape == (8 * 3, 4 * 3)
    assert layer.scaling == 2.0
    assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0
    assert layer.get_delta_weight().shape == conv.weight.shape


@pytest.mark.parametrize("gated", [True, False])
def test_toy_zoo_merged_matches_unmerged(gated: bool) -> None:
    model = _zoo_with_blocks()
    x = torch.rand(2, 4, 12, 10)
    gates = inject_lora(model, ZOO_BLOCKS, rank=3, lora_alpha=6.0, gated=gated)
    assert set(gates) == set(ZOO_BLOCKS)
    assert len(list(lora_layers(model))) == 6
    randomize_lora(model)
    with torch.no_grad():
        for i, g in enumerate(gates.values()):
            g.alpha.fill_(0.3 * i - 0.5)
        unmerged = model(x)
        base_out = copy.deepcopy(model)
        remove_lora(base_out)
        plain = base_out(x)
    assert not torch.allclose(unmerged, plain, atol=1e-4), "random B must change the output"
    merged_model = merge_lora(model)
    assert not list(lora_layers(merged_model)) and not gates_of(merged_model)
    assert not lora_parameters(merged_model) and not gate_parameters(merged_model)
    assert all(type(getattr(merged_model, b)[0]) in (nn.Conv2d, nn.Linear) for b in ZOO_BLOCKS)
    with torch.no_grad():
        torch.testing.assert_close(merged_model(x), unmerged, atol=1e-5, rtol=0)


def test_reflect_conv_keeps_its_padding_mode() -> None:
    conv = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")
    layer = LoRAConv2d(conv, rank=2)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        layer.lora_B.normal_()
        expected = conv._conv_forward(x, conv.weight + layer.get_delta_weight(), conv.bias)
        zero_padded = nn.functional.conv2d(x, conv.weight + layer.get_delta_weight(), conv.bias, padding=1)
        out = layer(x)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, zero_padded), "reflect padding must not fall back to zero padding"


def test_b_zero_is_bit_identical(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=3)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        inject_lora(model, candidate_blocks(model))
        after = model(x)
    assert torch.equal(before, after)


def test_gate_scales_contribution_and_gradients_reach_alpha() -> None:
    lin = nn.Linear(5, 3)
    gate = Gate()
    layer = LoRALinear(lin, rank=2, lora_alpha=4.0, gate=gate)
    with torch.no_grad():
        layer.lora_B.normal_()
    raw = (layer.lora_B @ layer.lora_A) * 2.0
    torch.testing.assert_close(layer.get_delta_weight(), 0.5 * raw)  # alpha 0 -> gate 0.5
    layer(torch.rand(4, 5)).sum().backward()
    assert gate.alpha.grad is not None and gate.alpha.grad.abs() > 0
    gate.fix_to_one()
    torch.testing.assert_close(layer.get_delta_weight(), raw)
    assert gate.frozen


def test_parameters_selected_by_name_and_disjoint(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=3)
    inject_lora(model, ["x1", "x3"])
    lora, gates = lora_parameters(model), gate_parameters(model)
    assert set(gates) == {"x1.lora_gate.alpha", "x3.lora_gate.alpha"}
    assert lora and all(n.endswith(("lora_A", "lora_B")) for n in lora)
    assert not set(lora) & set(gates)
    assert not {id(p) for p in lora.values()} & {id(p) for p in gates.values()}
    # depthwise convs are excluded by the toy spec: 2 layers (conv, mix) per block
    assert sorted(n for n, _ in lora_layers(model)) == ["x1.conv", "x1.mix", "x3.conv", "x3.mix"]


def test_exact_block_names_x1_never_matches_x10(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=11)
    gates = inject_lora(model, ["x1"])
    assert list(gates) == ["x1"]
    assert {n.split(".")[0] for n, _ in lora_layers(model)} == {"x1"}
    inject_lora(model, ["x10", "x11"])
    remove_lora(model, keep=["x10"])
    assert sorted(gates_of(model)) == ["x10"]
    assert {n.split(".")[0] for n, _ in lora_layers(model)} == {"x10"}


def test_unknown_block_suggests_close_names(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=11)
    with pytest.raises(ConfigError, match="did you mean.*x1"):
        inject_lora(model, ["x1_"])
    with pytest.raises(ConfigError):
        inject_lora(model, ["x"])  # a prefix of real names is not a block


def test_safe_merge_rejects_non_finite(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1", "x2"])
    randomize_lora(model)
    with torch.no_grad():
        model.x2.mix.lora_B[0, 0] = float("nan")
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NumericalError, match="x2.mix"):
        merge_lora(model, safe=True)
    for k, v in model.state_dict().items():  # a refusal leaves the model untouched
        assert torch.equal(v, snapshot[k]) or (v.isnan().any() and k.endswith("lora_B"))
    with torch.no_grad():
        model.x2.mix.lora_B[0, 0] = float("inf")
    with pytest.raises(NumericalError):
        merge_lora(model)


def test_merge_in_place_then_unmerge_restores_exactly(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    base = copy.deepcopy(model.state_dict())
    inject_lora(model, ["x1", "x2"])
    randomize_lora(model)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        unmerged = model(x)
        merge_lora(model, unload=False)
        assert all(layer.merged for _, layer in lora_layers(model))
        torch.testing.assert_close(model(x), unmerged, atol=1e-5, rtol=0)
        unmerge_lora(model)
        torch.testing.assert_close(model(x), unmerged, atol=1e-6, rtol=0)
    assert torch.equal(model.x1.conv.base_layer.weight, base["x1.conv.weight"])


def test_scale_lora_moves_the_merged_weights_that_share_of_the_way(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    base = copy.deepcopy(model.state_dict())
    inject_lora(model, ["x1", "x2"])
    randomize_lora(model)
    full = merge_lora(copy.deepcopy(model)).state_dict()
    scaled = merge_lora(scale_lora(model, 0.25)).state_dict()
    changed = 0
    for key, weight in base.items():
        if not weight.is_floating_point():
            continue
        torch.testing.assert_close(scaled[key], weight + 0.25 * (full[key] - weight), atol=1e-6, rtol=0)
        changed += not torch.equal(full[key], weight)
    assert changed >= 2  # the adapter did move weights, so the check above is not trivially true


def test_scale_lora_refuses_a_merged_model(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1"])
    merge_lora(model, unload=False)
    with pytest.raises(ValueError, match="unmerged"):
        scale_lora(model, 0.5)


def test_gate_values_and_frozen_gates_get_no_grad(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    gates = inject_lora(model, ["x1", "x2"])
    assert gate_values(model) == {"x1": 0.5, "x2": 0.5}
    gates["x1"].freeze()
    randomize_lora(model)
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    assert gates["x1"].alpha.grad is None and gates["x2"].alpha.grad is not None


TINY = [n for n in list_backbones() if n.startswith("tiny-")]


@pytest.mark.parametrize(
    "name", TINY or [pytest.param("none", marks=pytest.mark.skip("no tiny-* backbone yet"))]
)
def test_tiny_backbones_merged_matches_unmerged(name: str) -> None:
    from dehazekit.backbones import forward_padded, get_spec

    torch.manual_seed(0)
    model = create_backbone(name).eval()
    spec = get_spec(name)
    size = max(spec.min_size, 2 * spec.pad_multiple, 16)
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        base_out = forward_padded(model, x)
    gates = inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    assert gates, f"{name}: no block received LoRA"
    with torch.no_grad():
        assert torch.equal(forward_padded(model, x), base_out), "B=0 must leave outputs bit-identical"
        randomize_lora(model, scale=0.05)
        for i, g in enumerate(gates.values()):
            g.alpha.fill_(((i % 5) - 2) * 0.4)
        unmerged = forward_padded(model, x)
        assert not torch.equal(unmerged, base_out)
        merge_lora(model)
        assert not lora_parameters(model) and not gate_parameters(model)
        assert set(model.state_dict()) == set(create_backbone(name).state_dict())
        torch.testing.assert_close(forward_padded(model, x), unmerged, atol=1e-5, rtol=0)


def test_remove_gates_folds_values_and_keeps_outputs(toy_backbone: str) -> None:
    from dehazekit.lora import remove_gates

    model = create_backbone(toy_backbone, channels=4, depth=3)
    gates = inject_lora(model, ["x1", "x3"])
    randomize_lora(model)
    with torch.no_grad():
        gates["x1"].alpha.fill_(-1.2)
        x = torch.rand(1, 3, 16, 16)
        before = model(x)
        remove_gates(model)
        after = model(x)
    assert not gates_of(model) and not gate_parameters(model) and lora_parameters(model)
    assert all(layer.gate is None for _, layer in lora_layers(model))
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Outer(nn.Module):
    """Candidate blocks 'outer' and 'outer.inner' are nested: inner's conv lies under both paths."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.inner = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.conv(x))


@pytest.mark.parametrize("keep", ["outer", "outer.inner"])
def test_remove_lora_keeps_exactly_the_kept_blocks_when_nested(keep: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("outer", _Outer())
    inject_lora(model, ["outer", "outer.inner"], rank=1, lora_alpha=1.0)
    assert {layer.block for _, layer in lora_layers(model)} == {"outer", "outer.inner"}
    randomize_lora(model)
    remove_lora(model, keep=[keep])
    assert {layer.block for _, layer in lora_layers(model)} == {keep}
    assert sorted(gates_of(model)) == [keep]
    # every remaining layer's gate is a gate still registered in the model
    registered = {id(g) for g in gates_of(model).values()}
    assert all(id(layer.gate) in registered for _, layer in lora_layers(model))


def test_remove_lora_from_a_merged_model_restores_the_base_weights(toy_backbone: str) -> None:
    torch.manual_seed(0)
    model = create_backbone(toy_backbone, channels=4, depth=3)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    inject_lora(model, ["x1", "x2"], rank=1, lora_alpha=1.0)
    randomize_lora(model, scale=0.5)
    merge_lora(model, unload=False)  # deltas folded into the base weights in place
    remove_lora(model, keep=["x2"])
    for key, value in model.state_dict().items():
        if key.startswith("x1.") or key in ("head.weight", "tail.weight"):
            torch.testing.assert_close(value, base[key], atol=0, rtol=0, msg=key)
