import pytest
import torch

from dehazekit.backbones.padding import pad_to_multiple, padded_size


@pytest.mark.parametrize(
    "size,multiple,min_size,expected",
    [(30, 16, 1, 32), (32, 16, 1, 32), (200, 32, 256, 256), (1, 4, 1, 4), (257, 32, 256, 288)],
)
def test_padded_size(size, multiple, min_size, expected):
    assert padded_size(size, multiple, min_size) == expected


def test_pad_is_reflective_and_crop_restores_original():
    x = torch.rand(2, 3, 30, 45)
    padded, (h, w) = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (32, 48) and (h, w) == (30, 45)
    assert torch.equal(padded[..., :h, :w], x)
    assert torch.equal(padded[..., 30, :45], x[..., 28, :])  # reflect, not zeros


def test_tiny_input_beyond_reflection_range_falls_back_to_replicate():
    x = torch.rand(1, 3, 3, 3)
    padded, _ = pad_to_multiple(x, 8, min_size=16)
    assert padded.shape[-2:] == (16, 16)
    assert torch.isfinite(padded).all()
