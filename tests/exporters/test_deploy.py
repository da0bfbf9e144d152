"""to_deploy: LoRA merged, re-parameterised, frozen; broken models refused; caller's model untouched."""

from __future__ import annotations

import pytest
import torch

from dehazekit.backbones import candidate_blocks, create_backbone
from dehazekit.exporters.deploy import lora_leftovers, to_deploy
from dehazekit.exporters.onnx_export import export_onnx, read_meta
from dehazekit.exporters.verify import verify
from dehazekit.runtimes.errors import NumericalError


def _lora_model(name: str = "tiny-gunet") -> torch.nn.Module:
    from dehazekit.lora import inject_lora, lora_parameters

    torch.manual_seed(3)
    model = create_backbone(name).eval()
    inject_lora(model, candidate_blocks(model), rank=2)
    with torch.no_grad():
        for pname, param in lora_parameters(model).items():
            if "lora_B" in pname:
                param.normal_(0, 0.2)
    return model


def test_lora_is_merged_and_outputs_kept():
    model = _lora_model()
    deploy = to_deploy(model)
    assert lora_leftovers(model), "the caller's model keeps its adapter"
    assert not lora_leftovers(deploy)
    assert not deploy.training and not any(p.requires_grad for p in deploy.parameters())
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-5, rtol=1e-5)


def test_non_finite_weights_are_refused():
    model = create_backbone("tiny-gunet")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NumericalError, match="NaN/Inf"):
        to_deploy(model)


def test_diverged_adapter_is_refused():
    model = _lora_model()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(float("inf"))
                break
    with pytest.raises(NumericalError):
        to_deploy(model)


def test_train_form_is_reparameterised_before_export(tmp_path):
    torch.manual_seed(4)
    train = create_backbone("tiny-dea", form="train").eval()
    deploy = to_deploy(train)
    assert deploy.backbone_config.get("form") == "deploy"
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), train(x), atol=1e-5, rtol=1e-4)
    path = export_onnx(train, tmp_path / "dea.onnx")
    assert read_meta(path).config.get("form") == "deploy"  # the artifact describes what it contains
    assert verify(train, path).passed
