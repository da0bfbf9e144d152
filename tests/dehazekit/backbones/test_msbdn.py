"""MSBDN-DFF: tiny forward contract, padding, LoRA candidates (reflection pads kept), checkpoint loading.

Faithfulness against the authors' numbers lives in test_compat.py (keys + strong golden).
"""

from __future__ import annotations

import logging

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
from dehazekit.backbones.msbdn import ConvLayer, ResidualBlock
from dehazekit.runtimes.errors import CheckpointMismatchError
from tests.dehazekit.backbones.helpers import check_lora_merge, export_dynamic_onnx


def _tiny(**overrides) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone("tiny-msbdn", **overrides).eval()


def _perturb(model: nn.Module) -> nn.Module:
    # Move every weight off its init so a load that silently did nothing would be caught.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
def test_tiny_forward_shape(size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = _tiny()(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("size", [(37, 45), (17, 50)])
def test_forward_padded_any_size(size):
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = forward_padded(_tiny(), x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_min_size_is_honest():
    spec = get_spec("msbdn")
    assert (spec.pad_multiple, spec.min_size) == (16, 32)
    with pytest.raises(RuntimeError, match="[Pp]adding size"), torch.no_grad():
        _tiny()(torch.rand(1, 3, 16, 16))  # the 1/16 trunk would be 1 px, too small for its reflect pad


def test_parameter_count_equals_authors():
    assert count_parameters("msbdn") == 31_353_061


@pytest.mark.parametrize("name, trunk", [("tiny-msbdn", 2), ("msbdn", 18)])
def test_candidates_every_residual_block_in_forward_order(name, trunk):
    with torch.device("meta"):
        model = create_backbone(name)
    blocks = candidate_blocks(model)
    assert len(blocks) == 24 + trunk
    assert blocks[:3] == ["dense0.0", "dense0.1", "dense0.2"] and blocks[-1] == "dense_1.2"
    assert blocks[12 : 12 + trunk] == [f"dehaze.res{i}" for i in range(trunk)]
    assert set(blocks) == {n for n, m in model.named_modules() if isinstance(m, ResidualBlock)}
    exclude = get_spec(name).exclude
    for block in blocks:
        convs = [
            n
            for n, m in model.get_submodule(block).named_modules()
            if type(m) is nn.Conv2d and not exclude(f"{block}.{n}", m)
        ]
        assert convs == ["conv1.conv2d", "conv2.conv2d"], block


def test_lora_wraps_conv_and_keeps_reflection_padding():
    from dehazekit.lora import inject_lora

    model = _perturb(_tiny())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
    blocks = candidate_blocks(model)
    inject_lora(model, blocks, rank=2, lora_alpha=4.0)
    for block in blocks:
        layer = model.get_submodule(f"{block}.conv1")
        assert isinstance(layer, ConvLayer) and isinstance(layer.reflection_pad, nn.ReflectionPad2d)
        assert type(layer.conv2d) is not nn.Conv2d  # wrapped by LoRA, pad module untouched
    model = check_lora_merge(model, x, reference)
    assert all(type(model.get_submodule(f"{b}.conv1.conv2d")) is nn.Conv2d for b in blocks)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_whole_pickled_module_loads_safely(tmp_path, caplog, legacy):
    # The authors release torch.save(model); our reader extracts tensors without unpickling classes.
    caplog.set_level(logging.INFO, logger="dehazekit.backbones.weights")
    source = _perturb(_tiny())
    path = tmp_path / "msbdn_whole.pkl"
    torch.save(source, path, _use_new_zipfile_serialization=not legacy)  # torch < 1.6 wrote legacy files
    target = _tiny()
    load_weights(target, path)
    assert "tensor-only unpickler" in caplog.text  # weights_only refused the module, the safe path ran
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_wrong_checkpoint_names_keys():
    state = _tiny(res_blocks=3).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"unexpected 5: dehaze\.res2\.conv1\.conv2d\.weight"):
        load_weights(_tiny(), state)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch .*conv_input\.conv2d\.weight"):
        load_weights(_tiny(), _tiny(width=8).state_dict())


def test_tiny_exports_to_onnx_with_dynamic_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _perturb(_tiny())
    path = tmp_path / "tiny_msbdn.onnx"
    export_dynamic_onnx(model, path, (1, 3, 32, 32))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 48, 64)  # other batch and size than traced: the skip-size resize must stay dynamic
    (y_ort,) = session.run(None, {"hazy": x.numpy()})
    with torch.no_grad():
        y = model(x)
    assert y_ort.shape == tuple(y.shape)
    assert float((torch.from_numpy(y_ort) - y).abs().max()) <= 1e-4 * max(1.0, float(y.abs().max()))
