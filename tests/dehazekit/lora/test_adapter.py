"""Adapter files: round trip, digest, gate values, backbone check."""

from __future__ import annotations

import json

import pytest
import torch

from dehazekit.backbones import create_backbone
from dehazekit.lora import (
    adapter_digest,
    gate_values,
    inject_lora,
    load_adapter,
    lora_parameters,
    merge_lora,
    read_adapter_info,
    remove_lora,
    save_adapter,
)
from dehazekit.runtimes.errors import ConfigError, ModelFileError
from tests.dehazekit.lora.toy_nets import randomize_lora


def _adapted(name: str):
    torch.manual_seed(1)
    model = create_backbone(name, channels=4, depth=4)
    gates = inject_lora(model, ["x1", "x2", "x4"], rank=2, lora_alpha=5.0)
    randomize_lora(model, seed=3)
    with torch.no_grad():
        gates["x1"].alpha.fill_(1.5)
        gates["x4"].alpha.fill_(-0.7)
    return model


def test_adapter_round_trip(tmp_path, toy_backbone: str) -> None:
    model = _adapted(toy_backbone)
    searched = {"x1": 0.8, "x2": 0.5, "x3": 0.1, "x4": 0.3}
    remove_lora(model, keep=["x1", "x4"])
    save_adapter(
        model,
        tmp_path,
        {
            "objective": "dcp",
            "prompts": [["hazy", "clear"]],
            "data_digest": "abc",
            "seed": 7,
            "gates": searched,
            "steps": 12,
        },
    )
    info = json.loads((tmp_path / "adapter.json").read_text())
    assert info["backbone"] == toy_backbone and info["backbone_config"] == {"channels": 4, "depth": 4}
    assert info["rank"] == 2 and info["lora_alpha"] == 5.0 and info["blocks"] == ["x1", "x4"]
    assert info["objective"] == "dcp" and info["seed"] == 7 and info["steps"] == 12
    assert info["format_version"] == 1  # the file format readers rely on; bump only with a migration
    # all searched gates kept; the model's own (current) values win for its blocks
    assert info["gates"]["x3"] == 0.1 and info["gates"]["x1"] == pytest.approx(
        torch.sigmoid(torch.tensor(1.5)).item()
    )
    assert info["digest"] == adapter_digest(tmp_path) == adapter_digest(tmp_path / "adapter.safetensors")
    assert read_adapter_info(tmp_path)["blocks"] == ["x1", "x4"]

    fresh = create_backbone(toy_backbone, channels=4, depth=4)
    base_sd = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora" not in k}
    fresh.load_state_dict(base_sd)
    load_adapter(fresh, tmp_path)
    assert gate_values(fresh) == pytest.approx(gate_values(model))
    for name, p in lora_parameters(model).items():
        assert torch.equal(p, lora_parameters(fresh)[name])
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)
        merged = merge_lora(fresh)(x)
    torch.testing.assert_close(merged, model(x).detach(), atol=1e-5, rtol=0)


def test_adapter_refuses_wrong_backbone_and_tampering(tmp_path, toy_backbone: str) -> None:
    model = _adapted(toy_backbone)
    save_adapter(model, tmp_path, {"seed": 1})
    other = create_backbone(toy_backbone, channels=4, depth=4)
    other.backbone_name = "tiny-gunet"
    with pytest.raises(ConfigError, match="another backbone"):
        load_adapter(other, tmp_path)
    blob = bytearray((tmp_path / "adapter.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (tmp_path / "adapter.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="digest"):
        load_adapter(create_backbone(toy_backbone, channels=4, depth=4), tmp_path)


def test_adapter_needs_lora_and_json_info(tmp_path, toy_backbone: str) -> None:
    with pytest.raises(ConfigError, match="no LoRA"):
        save_adapter(create_backbone(toy_backbone, channels=4, depth=2), tmp_path)
    model = _adapted(toy_backbone)
    with pytest.raises(ConfigError, match="JSON"):
        save_adapter(model, tmp_path, {"bad": object()})
    with pytest.raises(ModelFileError):
        read_adapter_info(tmp_path / "nowhere")


def test_adapter_without_gates_round_trips(tmp_path, toy_backbone: str) -> None:
    from dehazekit.lora import gates_of, remove_gates

    model = _adapted(toy_backbone)
    remove_gates(model, ["x1"])
    save_adapter(model, tmp_path)
    info = read_adapter_info(tmp_path)
    assert info["blocks"] == ["x1", "x2", "x4"] and sorted(info["gated"]) == ["x2", "x4"]
    fresh = create_backbone(toy_backbone, channels=4, depth=4)
    fresh.load_state_dict(
        {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora" not in k}
    )
    load_adapter(fresh, tmp_path)
    assert sorted(gates_of(fresh)) == ["x2", "x4"]
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)
