"""Pre/post-processing: layout, channel order, value range, reflect padding and crop-back."""

from __future__ import annotations

import numpy as np
import pytest

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.meta import ModelMeta
from dehazekit.runtimes.processing import (
    check_frame,
    crop_batch,
    from_model_batch,
    pad_batch,
    plan_padding,
    to_model_batch,
)

RNG = np.random.default_rng(0)


def frame(h=17, w=23):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_uint8_round_trip_is_exact_for_any_value_range():
    frames = [frame(), frame()]
    for meta in (
        ModelMeta(backbone="a"),
        ModelMeta(backbone="b", value_range=(-1, 1)),
        ModelMeta(backbone="c", mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)),
    ):
        batch = to_model_batch(frames, meta)
        assert batch.shape == (2, 3, 17, 23) and batch.dtype == np.float32
        back = from_model_batch(batch, meta)
        for a, b in zip(frames, back):
            np.testing.assert_array_equal(a, b)


def test_value_range_and_layout():
    f = np.zeros((2, 2, 3), np.uint8)
    f[0, 1] = (255, 0, 51)
    batch = to_model_batch([f], ModelMeta(backbone="a"))
    assert batch[0, :, 0, 1].tolist() == pytest.approx([1.0, 0.0, 0.2])
    batch = to_model_batch([f], ModelMeta(backbone="a", value_range=(-1, 1)))
    assert batch[0, :, 0, 1].tolist() == pytest.approx([1.0, -1.0, -0.6])


def test_bgr_frames_reach_an_rgb_model_as_rgb_and_come_back_bgr():
    rgb = frame()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    meta = ModelMeta(backbone="a")
    np.testing.assert_array_equal(to_model_batch([bgr], meta, bgr=True), to_model_batch([rgb], meta))
    out = from_model_batch(to_model_batch([bgr], meta, bgr=True), meta, bgr=True)[0]
    np.testing.assert_array_equal(out, bgr)


@pytest.mark.parametrize(
    "h,w,multiple,min_size,expected",
    [
        (17, 23, 4, 1, (20, 24)),
        (16, 16, 16, 1, (16, 16)),
        (5, 7, 1, 32, (32, 32)),
        (850, 478, 16, 1, (864, 480)),
    ],
)
def test_padding_reaches_multiple_and_min_size(h, w, multiple, min_size, expected):
    meta = ModelMeta(backbone="a", pad_multiple=multiple, min_size=min_size)
    pad = plan_padding(h, w, meta)
    batch = RNG.random((1, 3, h, w), dtype=np.float32)
    padded = pad_batch(batch, pad)
    assert padded.shape[2:] == expected
    np.testing.assert_array_equal(crop_batch(padded, pad), batch)


def test_padding_reflects_instead_of_zero_filling():
    batch = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    padded = pad_batch(batch, plan_padding(3, 4, ModelMeta(backbone="a", pad_multiple=4)))
    np.testing.assert_array_equal(padded[0, 0, 3], batch[0, 0, 1])  # row 3 mirrors row 1
    one_row = pad_batch(
        np.ones((1, 1, 1, 3), np.float32), plan_padding(1, 3, ModelMeta(backbone="a", pad_multiple=4))
    )
    assert one_row.shape == (1, 1, 4, 4) and np.all(one_row == 1)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 4), np.uint8), "3 colour channels"),
        (np.zeros((4, 4, 4), np.uint8), "3 colour channels"),
        (np.zeros((4, 4, 3), np.float32), "dtype"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        ("img", "numpy"),
    ],
)
def test_bad_frames_are_rejected(bad, match):
    with pytest.raises(InputError, match=match):
        check_frame(bad)


def test_a_batch_must_share_one_size():
    with pytest.raises(InputError, match="differ in size"):
        to_model_batch([frame(8, 8), frame(8, 9)], ModelMeta(backbone="a"))
    with pytest.raises(InputError, match="no frames"):
        to_model_batch([], ModelMeta(backbone="a"))
