"""save_model / load_model round trips and refusals."""

from __future__ import annotations

import pytest
import torch

from dehazekit.backbones import create_backbone, list_backbones
from dehazekit.lora import inject_lora, merge_lora, save_adapter
from dehazekit.models import MODEL_META, MODEL_WEIGHTS, default_model_path, load_model, meta_for, save_model
from dehazekit.runtimes.errors import ConfigError, ModelFileError
from dehazekit.runtimes.meta import ModelMeta
from tests.dehazekit.lora.toy_nets import randomize_lora, toy_backbone_registered


@pytest.fixture
def toy_backbone():
    with toy_backbone_registered() as name:
        yield name


def test_save_load_round_trip(tmp_path, toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=3)
    inject_lora(model, ["x2"])
    randomize_lora(model)
    with pytest.raises(ConfigError, match="merge_lora"):
        save_model(model, tmp_path)
    merge_lora(model)
    path = save_model(model, tmp_path, adapter_digest="d" * 64, selected_blocks=["x2"])
    assert path == tmp_path / MODEL_WEIGHTS
    meta = ModelMeta.load(tmp_path / MODEL_META)
    assert meta.backbone == toy_backbone and meta.config == {"channels": 4, "depth": 3}
    assert meta.pad_multiple == 4 and meta.min_size == 8 and meta.selected_blocks == ["x2"]
    x = torch.rand(1, 3, 16, 16)
    for source in (tmp_path, path):
        loaded = load_model(source)
        assert not loaded.training and loaded.dehazekit_meta.adapter_digest == "d" * 64
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))


def test_official_checkpoint_needs_backbone_name(tmp_path, toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    ckpt = tmp_path / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    with pytest.raises(ModelFileError, match="backbone=NAME"):
        load_model(ckpt)
    loaded = load_model(ckpt, backbone=toy_backbone, channels=4, depth=2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    save_model(model, tmp_path / "saved")
    with pytest.raises(ConfigError, match="does not match"):
        load_model(tmp_path / "saved", backbone="tiny-gunet")


def test_refuses_adapter_only_folder_and_missing_default(tmp_path, toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    inject_lora(model, ["x1"])
    save_adapter(model, tmp_path)
    with pytest.raises(ModelFileError, match="unmerged adapter"):
        load_model(tmp_path)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "missing.safetensors")
    assert default_model_path().name == "default"
    if not (default_model_path() / MODEL_WEIGHTS).is_file():
        with pytest.raises(ModelFileError, match="default model"):
            load_model()


def test_meta_for_rejects_unknown_fields(toy_backbone: str) -> None:
    model = create_backbone(toy_backbone, channels=4, depth=2)
    assert meta_for(model, precision="fp16").precision == "fp16"
    with pytest.raises(ConfigError):
        meta_for(model, not_a_field=1)


@pytest.mark.skipif("tiny-gunet" not in list_backbones(), reason="tiny-gunet not registered")
def test_tiny_gunet_round_trip(tmp_path) -> None:
    model = create_backbone("tiny-gunet").eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
