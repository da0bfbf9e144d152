"""DEA-Net: both forms, DEConv on CPU, reparameterisation parity, LoRA candidates, checkpoint loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones import (
    candidate_blocks,
    count_parameters,
    create_backbone,
    forward_padded,
    get_spec,
    load_weights,
)
from dehazekit.backbones.dea_layers import DEConv
from dehazekit.runtimes.errors import CheckpointMismatchError, ConfigError


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    # Default init leaves biases small; larger random values make every branch matter in parity checks.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


@pytest.fixture(scope="module")
def tiny_train():
    return _randomize(create_backbone("tiny-dea", form="train")).eval()


def test_parameter_counts_match_authors():
    assert count_parameters("dea") == 3_653_377
    assert count_parameters("dea", form="train") == 7_789_313
    assert "7,789,313" in get_spec("dea").description


@pytest.mark.parametrize("form", ["deploy", "train"])
def test_tiny_forward_shapes(form):
    model = create_backbone("tiny-dea", form=form).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 48)).shape == (2, 3, 32, 48)
        assert forward_padded(model, torch.rand(1, 3, 30, 37)).shape == (1, 3, 30, 37)
    assert get_spec("dea").pad_multiple == 4


def test_deconv_runs_on_cpu_and_difference_branches_ignore_flat_input():
    torch.manual_seed(0)
    conv = DEConv(4)
    x = torch.rand(1, 4, 8, 8)
    central_w = conv.conv1_1.conv.weight
    # Central difference == plain conv minus (sum of taps) * centre pixel, borders included.
    w, b = conv.conv1_1.kernel()
    expected = F.conv2d(x, central_w, b, padding=1) - F.conv2d(x, central_w.sum((2, 3), keepdim=True))
    assert torch.allclose(F.conv2d(x, w, b, padding=1), expected, atol=1e-6)
    # The four difference kernels sum to zero: on a constant image their interior response is the bias.
    flat = torch.full((1, 4, 8, 8), 0.7)
    for branch in (conv.conv1_1, conv.conv1_2, conv.conv1_3, conv.conv1_4):
        w, b = branch.kernel()
        out = F.conv2d(flat, w, b, padding=1)[..., 1:-1, 1:-1]
        assert torch.allclose(out, b.view(1, -1, 1, 1).expand_as(out), atol=1e-6), type(branch).__name__
    assert conv(x).shape == x.shape


def test_reparameterize_folds_to_deploy_form_with_same_outputs(tiny_train):
    deploy = tiny_train.reparameterize()
    assert deploy.form == "deploy" and not deploy.training
    assert deploy.backbone_name == "tiny-dea" and deploy.backbone_config == {"base_dim": 4, "form": "deploy"}
    assert not any(isinstance(m, DEConv) for m in deploy.modules())
    assert sum(p.numel() for p in deploy.parameters()) < sum(p.numel() for p in tiny_train.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y_train, y_deploy = tiny_train(x), deploy(x)
    assert y_train.abs().max() > 0.1
    assert torch.allclose(y_train, y_deploy, atol=1e-5 * float(y_train.abs().max()), rtol=0)
    assert deploy.reparameterize() is deploy


@pytest.mark.parametrize("form", ["deploy", "train"])
def test_every_candidate_keeps_a_wrappable_conv(form):
    spec = get_spec("tiny-dea")
    model = create_backbone("tiny-dea", form=form)
    modules = dict(model.named_modules())
    blocks = candidate_blocks(model)
    assert len(blocks) == 26 and blocks.index("mix1") < blocks.index("up_level2_block1")
    for block in blocks:
        kept = [
            n
            for n, m in modules[block].named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not spec.exclude(f"{block}.{n}", m)
        ]
        assert kept, block
        assert all(".conv1_" not in f".{n}" and not n.startswith(("sa", "ca", "pa")) for n in kept), (
            block,
            kept,
        )


def test_exclusions_name_the_generators_and_depthwise_convs():
    exclude = get_spec("dea").exclude
    model = create_backbone("tiny-dea", form="train")
    mods = dict(model.named_modules())
    for name in (
        "level3_block1.pa.pa2",
        "level3_block1.sa.sa",
        "level3_block1.ca.ca.0",
        "mix2.ca.ca.2",
        "down_level1_block1.conv1.conv1_5",
        "down_level1_block1.conv1.conv1_1.conv",
    ):
        assert exclude(name, mods[name]), name
    for name in ("level3_block1.conv2", "mix1.conv", "up_level1_block4.conv2"):
        assert not exclude(name, mods[name]), name
    deploy = create_backbone("tiny-dea")
    assert not exclude("down_level1_block1.conv1", dict(deploy.named_modules())["down_level1_block1.conv1"])


def test_bilalora_preset_is_the_papers_sixteen_blocks():
    model = create_backbone("tiny-dea")
    preset = candidate_blocks(model, preset="bilalora")
    names = dict(model.named_modules())
    assert len(preset) == 16 and all(p in names for p in preset)
    assert set(preset) <= set(candidate_blocks(model))
    assert preset[0] == "down_level1_block1" and preset[-1] == "level3_block8"


def test_official_training_checkpoint_with_wrappers_loads(tmp_path, tiny_train):
    path = tmp_path / "PSNR_train.pk"
    torch.save({"model": {f"module.{k}": v for k, v in tiny_train.state_dict().items()}, "step": 3}, path)
    model = load_weights(create_backbone("tiny-dea", form="train").eval(), path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), tiny_train(x))


def test_wrong_form_checkpoint_names_keys(tmp_path, tiny_train):
    path = tmp_path / "train.pth"
    torch.save(tiny_train.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(create_backbone("tiny-dea"), path)
    message = str(err.value)
    # 24 DEConv blocks lack their folded conv1.weight and conv1.bias.
    assert "missing 48: down_level1_block1.conv1.weight" in message
    assert "down_level1_block1.conv1.conv1_1.conv.weight" in message


def test_bad_form_rejected():
    with pytest.raises(ConfigError, match="form"):
        create_backbone("dea", form="training")


def test_lora_on_deploy_form_merges_to_same_outputs():
    from dehazekit.lora import inject_lora, lora_layers, lora_parameters, merge_lora

    model = _randomize(create_backbone("tiny-dea"), seed=3).eval()
    keys = list(model.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y_base = model(x)
    gates = inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    # conv1 + conv2 in each of the 24 DE(A)Blocks, the 1x1 conv in each fusion block.
    assert len(gates) == 26 and len(list(lora_layers(model))) == 24 * 2 + 2
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if name.endswith("lora_B"):
                p.normal_(std=0.1)
    with torch.no_grad():
        y_lora = model(x)
        assert not torch.allclose(y_lora, y_base, atol=1e-4)  # the adapters really act
        merged = merge_lora(model)
        assert list(merged.state_dict()) == keys
        assert torch.allclose(merged(x), y_lora, atol=1e-5 * max(1.0, float(y_lora.abs().max())))
