"""gUNet family: shapes, LoRA candidates/exclusions, official checkpoint wrappers, mismatch errors."""

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
from dehazekit.runtimes.errors import CheckpointMismatchError, ConfigError


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_backbone("tiny-gunet").eval()


def test_parameter_counts_match_authors():
    assert count_parameters("gunet-t") == 844_899
    assert count_parameters("gunet-s") == 1_477_059


def test_pad_multiple_is_two_to_the_number_of_downsamples(tiny):
    spec = get_spec("gunet-t")
    assert spec.pad_multiple == 2 ** len(tiny.downs) == 8
    with torch.no_grad():
        out = tiny(torch.rand(1, 3, 24, 40))
        assert out.shape == (1, 3, 24, 40)
        # A size off the multiple breaks the skip fusion; forward_padded handles it by pad-and-crop.
        with pytest.raises(RuntimeError):
            tiny(torch.rand(1, 3, 20, 36))
        assert forward_padded(tiny, torch.rand(2, 3, 20, 37)).shape == (2, 3, 20, 37)


def test_output_is_residual_on_input(tiny):
    # Zeroing the output conv leaves exactly the input: the network predicts a residual.
    model = create_backbone("tiny-gunet").eval()
    nn.init.zeros_(model.outconv.proj[0].weight)
    nn.init.zeros_(model.outconv.proj[0].bias)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), x)
        assert not torch.allclose(tiny(x), x)


def test_candidates_are_every_block_in_forward_order():
    with torch.device("meta"):
        model = create_backbone("gunet-t")
    blocks = candidate_blocks(model)
    assert len(blocks) == 16 and blocks[0] == "layers.0.blocks.0" and blocks[-1] == "layers.6.blocks.1"
    stage_order = [int(b.split(".")[1]) for b in blocks]
    assert stage_order == sorted(stage_order)


def test_exclude_keeps_only_1x1_convs(tiny):
    spec = get_spec("tiny-gunet")
    modules = dict(tiny.named_modules())
    for block in candidate_blocks(tiny):
        convs = {n: m for n, m in modules[block].named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        kept = sorted(n for n, m in convs.items() if not spec.exclude(f"{block}.{n}", m))
        assert kept == ["conv.Wg.0", "conv.Wv.0", "conv.proj"], block
        assert spec.exclude(f"{block}.conv.Wv.1", modules[f"{block}.conv.Wv.1"])  # depthwise
        assert spec.exclude(f"{block}.norm", modules[f"{block}.norm"])


@pytest.mark.parametrize("wrap", ["plain", "dataparallel", "state_dict+module"])
def test_official_checkpoint_wrappers_load(tmp_path, tiny, wrap):
    state = tiny.state_dict()
    if wrap != "plain":
        state = {f"module.{k}": v for k, v in state.items()}
    if wrap == "state_dict+module":
        state = {"state_dict": state}
    path = tmp_path / "gunet.pth"
    torch.save(state, path)
    model = load_weights(create_backbone("tiny-gunet").eval(), path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), tiny(x))


def test_wrong_checkpoint_names_keys(tmp_path):
    with torch.device("meta"):
        small = create_backbone("gunet-t")
    path = tmp_path / "t.pth"
    torch.save(
        {"state_dict": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in small.state_dict().items()}}, path
    )
    with torch.device("meta"):
        bigger = create_backbone("gunet-s")
    with pytest.raises(CheckpointMismatchError, match=r"missing \d+: layers\.0\.blocks\.2\.norm\.weight"):
        load_weights(bigger, path)


def test_bad_depths_rejected():
    with pytest.raises(ConfigError, match="odd-length"):
        create_backbone("tiny-gunet", depths=[1, 1])


def test_lora_on_every_block_merges_to_same_outputs():
    from dehazekit.lora import inject_lora, lora_layers, lora_parameters, merge_lora

    torch.manual_seed(1)
    model = create_backbone("tiny-gunet").eval()
    keys = list(model.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y_base = model(x)
    gates = inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    assert len(gates) == 7 and len(list(lora_layers(model))) == 7 * 3  # Wv.0, Wg.0, proj per block
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if name.endswith("lora_B"):
                p.normal_(std=0.1)
    with torch.no_grad():
        y_lora = model(x)
        assert not torch.allclose(y_lora, y_base, atol=1e-4)  # the adapters really act
        merged = merge_lora(model)
        assert list(merged.state_dict()) == keys
        assert torch.allclose(merged(x), y_lora, atol=1e-5)
