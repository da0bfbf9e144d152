"""Adapter and gate state contracts the round-trip tests did not pin (found by benchmarks/mutants.py): one
rank per adapter, a reproducible adapter.json, what strict and lenient loads refuse or skip, the ungated
flag."""

from __future__ import annotations

import json

import pytest
import torch

from dehazekit.backbones import create_backbone
from dehazekit.lora import inject_lora, read_adapter_info, save_adapter
from dehazekit.runtimes.errors import ConfigError, ModelFileError


def test_a_model_whose_lora_layers_differ_in_rank_is_not_saved_as_one_adapter(tmp_path, toy_backbone) -> None:
    # adapter.json records a single rank/lora_alpha; saving mixed ranks would rebuild some layers wrongly
    torch.manual_seed(0)
    model = create_backbone(toy_backbone, channels=4, depth=4)
    inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    inject_lora(model, ["x2"], rank=4, lora_alpha=4.0)
    with pytest.raises(ConfigError, match="disagree"):
        save_adapter(model, tmp_path)


def test_adapter_json_does_not_depend_on_the_order_info_was_given_in(tmp_path, toy_backbone) -> None:
    # the same adapter saved twice must give the same bytes (diffable, digest-stable records)
    torch.manual_seed(0)
    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    save_adapter(model, tmp_path / "a", {"steps": 3, "note": "x"})
    save_adapter(model, tmp_path / "b", {"note": "x", "steps": 3})
    assert (tmp_path / "a" / "adapter.json").read_bytes() == (tmp_path / "b" / "adapter.json").read_bytes()


def test_an_adapter_json_that_is_not_an_object_is_refused(tmp_path) -> None:
    file = tmp_path / "adapter.json"
    file.write_text(json.dumps(["rank", "lora_alpha", "blocks"]))  # the right words, the wrong shape
    with pytest.raises(ModelFileError, match="required keys"):
        read_adapter_info(file)


def _saved_then_edited(tmp_path, toy_backbone, edit) -> tuple[torch.nn.Module, dict]:
    """An adapter whose tensor file was edited afterwards (digest dropped, as a hand-edited file would be)."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = create_backbone(toy_backbone, channels=4, depth=4)
    inject_lora(model, ["x1", "x2"], rank=2, lora_alpha=4.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.fill_(0.25)
    save_adapter(model, tmp_path)
    tensors = load_file(str(tmp_path / "adapter.safetensors"))
    edit(tensors)
    save_file(tensors, str(tmp_path / "adapter.safetensors"))
    info = json.loads((tmp_path / "adapter.json").read_text())
    info.pop("digest", None)
    (tmp_path / "adapter.json").write_text(json.dumps(info))
    return create_backbone(toy_backbone, channels=4, depth=4), tensors


def _first_b(tensors: dict) -> str:
    return sorted(k for k in tensors if k.endswith("lora_B"))[0]


def test_strict_load_names_a_missing_tensor(tmp_path, toy_backbone) -> None:
    from dehazekit.lora import load_adapter

    fresh, _ = _saved_then_edited(tmp_path, toy_backbone, lambda t: t.pop(_first_b(t)))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_adapter(fresh, tmp_path)


def _reshape_first_b(tensors: dict) -> None:
    key = _first_b(tensors)
    tensors[key] = torch.zeros(tensors[key].shape[0], tensors[key].shape[1] + 1)


def test_strict_load_reports_a_wrong_shape_as_one_clear_error(tmp_path, toy_backbone) -> None:
    from dehazekit.lora import load_adapter

    fresh, _ = _saved_then_edited(tmp_path, toy_backbone, _reshape_first_b)
    with pytest.raises(ModelFileError, match="shape mismatch"):
        load_adapter(fresh, tmp_path)


def test_lenient_load_skips_a_wrong_shaped_tensor_and_loads_the_rest(tmp_path, toy_backbone) -> None:
    from dehazekit.lora import load_adapter, lora_parameters

    fresh, tensors = _saved_then_edited(tmp_path, toy_backbone, _reshape_first_b)
    load_adapter(fresh, tmp_path, strict=False)
    skipped = _first_b(tensors)
    for name, p in lora_parameters(fresh).items():
        if name.endswith("lora_B"):
            assert torch.all(p == 0) if name == skipped else torch.all(p == 0.25), name


def test_an_ungated_gate_stays_ungated_through_its_state_dict() -> None:
    # the flag is state: a model rebuilt from a saved state_dict must apply the delta at 1, not at sigmoid(0)
    from dehazekit.lora.gates import Gate

    fresh = Gate()
    fresh.load_state_dict(Gate(ungated=True).state_dict())
    assert float(fresh.value()) == 1.0


def test_gates_live_on_the_device_of_the_layers_they_scale(toy_backbone) -> None:
    # the meta device stands in for a GPU here: a gate left on the CPU would break the forward on cuda
    model = create_backbone(toy_backbone, channels=4, depth=2).to("meta")
    gates = inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    assert gates["x1"].alpha.device.type == "meta" and gates["x1"].ungated.device.type == "meta"


def test_plain_lora_has_no_trainable_gate(toy_backbone) -> None:
    # gated=False: the factor is a constant 1, so nothing about the gate may be handed to an optimiser
    model = create_backbone(toy_backbone, channels=4, depth=2)
    gates = inject_lora(model, ["x1"], rank=2, lora_alpha=4.0, gated=False)
    assert gates["x1"].frozen and float(gates["x1"].value()) == 1.0
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_gate" in n)


def test_keeping_a_block_without_lora_is_one_clear_error_with_a_suggestion(toy_backbone) -> None:
    from dehazekit.lora import remove_lora

    model = create_backbone(toy_backbone, channels=4, depth=4)
    inject_lora(model, ["x1", "x2"], rank=2, lora_alpha=4.0)
    with pytest.raises(ConfigError, match="did you mean x1"):
        remove_lora(model, keep=["x1x"])


def test_only_gates_attached_as_a_blocks_lora_gate_count_as_block_gates(toy_backbone) -> None:
    from dehazekit.lora import gates_of
    from dehazekit.lora.gates import Gate

    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1"], rank=2, lora_alpha=4.0)
    model.add_module("spare", Gate())  # a Gate somewhere else is not a block's gate
    assert list(gates_of(model)) == ["x1"]
