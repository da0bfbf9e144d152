"""Stabiliser: removes synthetic flicker, leaves no ghost behind moving things, restarts at cuts."""

from __future__ import annotations

import numpy as np
import pytest

from dehazekit.metrics.flicker import flicker
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.stabilize import StabilizedDehazer, Stabilizer, StabilizerConfig, upsample
from tests.runtimes.video_seq import flickering_model, moving_square, static_scene


def _stabilise(inputs, outputs, config=None):
    stab = Stabilizer(config)
    return [stab.step(i, o) for i, o in zip(inputs, outputs)], stab


def test_flicker_of_a_static_scene_drops_by_more_than_half():
    inputs = static_scene()
    raw = flickering_model(inputs)
    steady, _ = _stabilise(inputs, raw)
    before, after = flicker(inputs, raw), flicker(inputs, steady)
    assert after["ratio"] < 0.5 * before["ratio"]
    assert after["brightness_std_out"] < 0.5 * before["brightness_std_out"]


def test_alpha_zero_is_the_identity():
    inputs = static_scene(count=5)
    raw = flickering_model(inputs)
    steady, _ = _stabilise(inputs, raw, StabilizerConfig(alpha=0.0))
    assert all(np.array_equal(a, b) for a, b in zip(raw, steady))


def test_moving_square_leaves_no_ghost():
    # The 'model' stretches contrast (its residual depends on content) and does not flicker: the
    # stabiliser must change next to nothing, least of all where the square was a frame ago (a
    # lagging residual there would be a ghost).
    inputs = moving_square()
    raw = [np.clip(1.3 * (f.astype(np.float32) - 128) + 128, 0, 255).astype(np.uint8) for f in inputs]
    steady, _ = _stabilise(inputs, raw)
    worst = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(raw, steady))
    assert worst <= 2


def test_scene_cut_restarts_the_history():
    first, second = static_scene(count=10, seed=0), [255 - f for f in static_scene(count=10, seed=3)]
    inputs = first + second
    raw = [
        np.clip(f.astype(np.int16) + (30 if i >= 10 else -30), 0, 255).astype(np.uint8)
        for i, f in enumerate(inputs)
    ]
    steady, stab = _stabilise(inputs, raw)
    assert stab.cuts == 1
    assert np.array_equal(steady[10], raw[10])  # the cut frame itself is the model's, not a blend
    assert np.abs(steady[12].astype(np.int16) - raw[12]).max() <= 2


def test_size_change_restarts_and_inputs_are_not_modified():
    a, b = static_scene(count=2), static_scene(count=2, height=40, width=40)
    copies = [f.copy() for f in a + b]
    _stabilise(a + b, flickering_model(a + b))
    assert all(np.array_equal(x, y) for x, y in zip(a + b, copies))


def test_upsample_of_a_constant_grid_is_constant():
    field = upsample(np.full((3, 4, 3), 7.5, np.float32), 37, 50, 13.0)
    assert field.shape == (37, 50, 3) and np.allclose(field, 7.5)


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="alpha"):
        StabilizerConfig(alpha=1.0)


def test_wrapper_stabilises_any_dehazer_in_order():
    inputs = static_scene(count=12)
    raw = iter(flickering_model(inputs))

    class Fake:  # stands in for Dehazer: the wrapper only needs process_batch/describe/close
        batch = 4

        def process_batch(self, frames):
            return [next(raw) for _ in frames]

        def describe(self):
            return {"backend": "fake"}

        def close(self):
            pass

    wrapped = StabilizedDehazer(Fake())
    outs = wrapped.process_batch(inputs[:4]) + wrapped.process_batch(inputs[4:])
    expected, _ = _stabilise(inputs, flickering_model(inputs))
    assert all(np.array_equal(a, b) for a, b in zip(outs, expected))
    assert wrapped.batch == 4 and "stabilize" in wrapped.describe()


def _flicker(frame: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A global offset that depends only on the input frame, so it does not depend on call order."""
    offset = int(frame.astype(np.int64).sum() % 25) - 12
    return np.clip(out.astype(np.int16) + offset, 0, 255).astype(np.uint8)


class _FlickeringDehazer:
    """A Dehazer whose outputs flicker, driven through submit_batch/collect_batch like the pipeline does."""

    def __init__(self, dehazer):
        self.dehazer, self.batch = dehazer, dehazer.batch

    def submit_batch(self, frames):
        return list(frames), self.dehazer.submit_batch(frames)

    def collect_batch(self, pending):
        frames, inner = pending
        return [_flicker(f, o) for f, o in zip(frames, self.dehazer.collect_batch(inner))]

    def describe(self):
        return self.dehazer.describe()

    def close(self):
        self.dehazer.close()


def test_the_pipeline_runs_frames_through_the_stabiliser(tiny_onnx):
    # The pipeline drives dehazers through submit_batch/collect_batch with one batch in flight: the
    # stabilised stream must equal stabilising the model's outputs frame by frame, in order.
    from dehazekit.runtimes import Dehazer, open_sink, open_source
    from dehazekit.runtimes.pipeline import run_pipeline

    frames = static_scene(count=9, height=24, width=32)
    with Dehazer(tiny_onnx) as plain:
        expected, _ = _stabilise(frames, [_flicker(f, plain(f)) for f in frames])
    written: list[np.ndarray] = []
    source = open_source(iter(frames))
    stabilised = StabilizedDehazer(_FlickeringDehazer(Dehazer(tiny_onnx, batch=2)))
    run_pipeline(source, open_sink(lambda item, frame: written.append(frame), source), stabilised)
    assert len(written) == len(frames)
    for got, want in zip(written, expected):
        np.testing.assert_array_equal(got, want)
