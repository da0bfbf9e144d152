"""Dehazer embedding API: single frames, streams, BGR frames, odd sizes (padding path)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from dehazekit.runtimes import Dehazer
from dehazekit.runtimes.errors import ConfigError, InputError
from tests.runtimes.media import moving_frames


def test_call_pads_odd_frames_and_matches_a_padded_session_run(tiny_onnx):
    frame = moving_frames(1, 37, 21)[0]  # neither side a multiple of 4
    out = Dehazer(tiny_onnx, device="cpu")(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # the same computation by hand: scale, reflect-pad to 24x40, run, crop, rescale
    x = frame.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    x = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 3)), mode="reflect")
    y = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"hazy": x})[0]
    expected = np.clip(np.rint(y[0, :, :21, :37].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - frame.astype(int)).max() > 0  # the network did change the frame


def test_stream_batches_but_gives_the_same_frames_in_order(tiny_onnx):
    frames = moving_frames(5, 32, 24) + moving_frames(2, 20, 16)  # a size change mid-stream
    single = Dehazer(tiny_onnx, device="cpu")
    batched = Dehazer(tiny_onnx, device="cpu", batch=3)
    outs = list(batched.stream(iter(frames)))
    assert len(outs) == len(frames)
    for frame, out in zip(frames, outs):
        np.testing.assert_array_equal(out, single(frame))


def test_stream_yields_each_frame_as_soon_as_its_batch_is_full(tiny_onnx):
    """A live camera must get frame i back before frame i+1 exists."""
    produced = []

    def camera():
        for i, frame in enumerate(moving_frames(3, 16, 16)):
            produced.append(i)
            yield frame

    with Dehazer(tiny_onnx, device="cpu") as dehazer:
        for i, _ in enumerate(dehazer.stream(camera())):
            assert produced[-1] == i


def test_bgr_mode_equals_rgb_mode_with_swapped_channels(tiny_onnx):
    frame = moving_frames(1, 24, 20)[0]
    rgb_out = Dehazer(tiny_onnx, device="cpu")(frame)
    bgr_out = Dehazer(tiny_onnx, device="cpu", bgr=True)(np.ascontiguousarray(frame[..., ::-1]))
    np.testing.assert_array_equal(bgr_out[..., ::-1], rgb_out)


def test_bad_frames_and_options(tiny_onnx):
    dehazer = Dehazer(tiny_onnx, device="cpu")
    with pytest.raises(InputError, match="3 colour channels"):
        dehazer(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(InputError, match="dtype"):
        dehazer(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ConfigError):
        Dehazer(tiny_onnx, batch=0)
