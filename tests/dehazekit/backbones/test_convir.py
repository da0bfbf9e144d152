"""ConvIR family: tiny forward contract, padding, LoRA candidates, checkpoint loading and errors.

Faithfulness against the authors' numbers lives in test_compat.py (keys + 256x256 strong golden).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dehazekit.backbones import (
    candidate_blocks,
    count_parameters,
    create_backbone,
    forward_padded,
    get_spec,
    load_weights,
)
from dehazekit.backbones.convir_layers import ResBlock
from dehazekit.runtimes.errors import CheckpointMismatchError, ConfigError
from tests.dehazekit.backbones.helpers import check_lora_merge, export_dynamic_onnx


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return create_backbone("tiny-convir").eval()


def test_tiny_forward_full_resolution_and_scales():
    model = _tiny()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        y = model(x)
        scales = model.forward_scales(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert [tuple(s.shape[-2:]) for s in scales] == [(8, 12), (16, 24), (32, 48)]
    assert torch.equal(scales[-1], y)


@pytest.mark.parametrize("size", [(37, 45), (20, 20), (32, 33)])
def test_forward_padded_any_size(size):
    model = _tiny()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = forward_padded(model, x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_min_size_is_honest():
    assert (get_spec("convir-s").pad_multiple, get_spec("convir-s").min_size) == (32, 256)
    spec = get_spec("tiny-convir")
    model = _tiny()
    # One pad multiple below the declared minimum, a dilated reflection pad no longer fits its pooled map.
    small = spec.min_size - spec.pad_multiple
    with pytest.raises(RuntimeError, match="[Pp]adding size"), torch.no_grad():
        model(torch.rand(1, 3, small, small))
    with torch.no_grad():
        assert model(torch.rand(1, 3, spec.min_size, spec.min_size)).shape[-1] == spec.min_size


@pytest.mark.parametrize(
    "name, params", [("convir-s", 5_530_505), ("convir-b", 8_630_665), ("convir-l", 14_830_985)]
)
def test_parameter_counts_equal_authors(name, params):
    assert count_parameters(name) == params


@pytest.mark.parametrize("name, per_stage", [("tiny-convir", 2), ("convir-s", 4), ("convir-l", 16)])
def test_candidates_are_every_resblock_in_forward_order(name, per_stage):
    with torch.device("meta"):
        model = create_backbone(name)
    blocks = candidate_blocks(model)
    assert len(blocks) == 6 * per_stage
    assert blocks[0] == "Encoder.0.layers.0" and blocks[-1] == f"Decoder.2.layers.{per_stage - 1}"
    # Exactly the ResBlocks, in module (= forward) order.
    assert blocks == [n for n, m in model.named_modules() if isinstance(m, ResBlock)]
    exclude = get_spec(name).exclude
    for block in blocks:
        module = model.get_submodule(block)
        convs = [
            n for n, m in module.named_modules() if type(m) is nn.Conv2d and not exclude(f"{block}.{n}", m)
        ]
        assert convs, f"{block} has no LoRA-eligible conv"


def test_exclude_skips_filter_generators_and_depthwise():
    with torch.device("meta"):
        model = create_backbone("tiny-convir")
    exclude = get_spec("tiny-convir").exclude
    block = "Encoder.0.layers.1"  # last block of the stage: holds the DeepPoolLayer
    convs = {n: m for n, m in model.named_modules() if n.startswith(block + ".") and type(m) is nn.Conv2d}
    excluded = sorted(n for n, m in convs.items() if exclude(n, m))
    kept = sorted(n for n, m in convs.items() if not exclude(n, m))
    assert excluded and all(n.endswith(("square_att.conv", "_spatial_att.conv")) for n in excluded)
    assert f"{block}.main.1.conv_sum" in kept and f"{block}.main.0.main.0" in kept
    assert exclude("x.dw", nn.Conv2d(8, 8, 3, groups=8))


@pytest.mark.parametrize("wrap", ["model", "module_prefix"])
def test_official_wrapped_checkpoint_loads(tmp_path, wrap):
    source = _tiny()
    for p in source.parameters():  # move every weight away from its init so a no-op load would be caught
        p.data.add_(torch.randn_like(p) * 0.05)
    state = source.state_dict()
    payload = {"model": state} if wrap == "model" else {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / "convir_tiny.pkl"
    torch.save(payload, path)
    target = _tiny()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = target(x)
        load_weights(target, path)
        after, expected = target(x), source(x)
    assert not torch.allclose(before, expected)
    assert torch.equal(after, expected)


def test_wrong_variant_checkpoint_names_keys():
    small_state = {
        k: torch.zeros(v.shape, dtype=v.dtype) for k, v in create_backbone("convir-s").state_dict().items()
    }
    base = create_backbone("convir-b")
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(base, small_state)
    message = str(err.value)
    assert "missing" in message and "Encoder.0.layers.4" in message


def test_wrong_width_checkpoint_names_shape():
    state = create_backbone("tiny-convir", base_channel=16).state_dict()
    with pytest.raises(
        CheckpointMismatchError, match=r"shape mismatch .*Encoder\.0\.layers\.0\.main\.0\.main\.0\.weight"
    ):
        load_weights(create_backbone("tiny-convir"), state)


def test_invalid_config_is_a_config_error():
    with pytest.raises(ConfigError):
        create_backbone("tiny-convir", pool_sizes=(4, 3, 1))
    with pytest.raises(ConfigError):
        create_backbone("tiny-convir", base_channel=12)


def test_tiny_exports_to_onnx_with_dynamic_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _tiny()
    path = tmp_path / "tiny_convir.onnx"
    export_dynamic_onnx(model, path, (1, 3, 32, 32))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 48, 64)
    (y_ort,) = session.run(None, {"hazy": x.numpy()})
    with torch.no_grad():
        y = model(x)
    assert y_ort.shape == tuple(y.shape)
    assert float((torch.from_numpy(y_ort) - y).abs().max()) <= 1e-4 * max(1.0, float(y.abs().max()))


def test_lora_on_all_candidates_merges_back_and_skips_generators():
    from dehazekit.lora import inject_lora

    model = _tiny()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
    inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    wrapped = {n.rsplit(".", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
    assert wrapped and not any(n.endswith(("square_att.conv", "_spatial_att.conv")) for n in wrapped)
    assert "Decoder.2.layers.1.main.1.conv_sum" in wrapped
    model = check_lora_merge(model, x, reference)
