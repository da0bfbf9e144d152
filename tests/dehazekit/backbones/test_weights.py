import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from dehazekit.backbones.weights import load_weights, read_state_dict, unwrap_state_dict
from dehazekit.runtimes.errors import CheckpointMismatchError, ModelFileError


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1))


@pytest.mark.parametrize("wrap", ["plain", "model", "params", "state_dict", "module", "nested"])
def test_wrappers_and_prefixes_are_unwrapped(tmp_path, wrap):
    src = _net()
    sd = src.state_dict()
    payload = {
        "plain": sd,
        "model": {"model": sd, "epoch": 3},
        "params": {"params": sd},
        "state_dict": {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}},
        "module": {f"module.{k}": v for k, v in sd.items()},
        "nested": {"model": {"state_dict": sd}},
    }[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1))
    load_weights(dst, path)
    for key, value in sd.items():
        assert torch.equal(dst.state_dict()[key], value), key


def test_safetensors_round_trip(tmp_path):
    src = _net()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    state = read_state_dict(path)
    assert set(state) == set(src.state_dict())


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    src = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 1))
    sd = src.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["2.bias"]
    path = tmp_path / "wrong.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(_net(), path)
    message = str(info.value)
    assert "missing 1: 2.bias" in message and "unexpected 1: extra.weight" in message
    assert "0.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)" in message


def test_non_strict_still_refuses_shape_mismatch():
    big = nn.Sequential(nn.Conv2d(3, 8, 3)).state_dict()
    with pytest.raises(CheckpointMismatchError):
        load_weights(nn.Sequential(nn.Conv2d(3, 4, 3)), big, strict=False)


def test_non_strict_loads_what_matches():
    src = nn.Sequential(nn.Conv2d(3, 4, 3)).state_dict()
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1))
    load_weights(dst, src, strict=False)
    assert torch.equal(dst[0].weight, src["0.weight"])


@pytest.mark.parametrize(
    "content,suffix", [(b"garbage", ".pth"), (b"garbage", ".safetensors"), (b"x", ".bin")]
)
def test_unreadable_files_are_model_file_errors(tmp_path, content, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        read_state_dict(path)


def test_missing_file_and_tensorless_checkpoint(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ModelFileError):
        read_state_dict(path)
    with pytest.raises(ModelFileError):
        unwrap_state_dict({}, "x")
