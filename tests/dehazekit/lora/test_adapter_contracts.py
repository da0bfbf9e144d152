"""Adapter file contracts the round-trip tests did not pin (found by benchmarks/mutants.py): one rank per
adapter, a reproducible adapter.json, and an adapter.json that is not an object is refused."""

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
