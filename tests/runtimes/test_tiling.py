"""Tiling: overlapping tiles blended with a raised cosine match whole-frame inference, without seams."""

from __future__ import annotations

import numpy as np
import pytest

from dehazekit.runtimes.dehazer import Dehazer
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.tiling import TileConfig, ramp_window, tile_starts
from tests.runtimes.media import moving_frames
from tests.runtimes.onnx_models import export_tiny


@pytest.fixture(scope="module")
def deep_onnx(tmp_path_factory):
    """Receptive field of 15+ pixels, so tile borders really differ from whole-frame output."""
    return export_tiny(tmp_path_factory.mktemp("deep") / "deep.onnx", width=4, depth=5, seed=3)


def test_tiles_cover_the_frame_with_the_requested_overlap():
    assert tile_starts(100, 100, 8) == [0]
    starts = tile_starts(130, 48, 16)
    assert starts[0] == 0 and starts[-1] == 130 - 48
    assert all(b - a <= 48 - 16 for a, b in zip(starts, starts[1:]))  # every neighbour overlaps >= 16


def test_windows_ramp_smoothly_and_never_reach_zero():
    w = ramp_window(32, 8, True, True)
    assert w.min() > 0 and w[8:24].tolist() == [1.0] * 16
    assert np.all(np.diff(w[:8]) > 0) and np.all(np.diff(w[-8:]) < 0)
    np.testing.assert_allclose(w[:8] + w[:8][::-1], 1.0, atol=1e-6)  # crossing ramps sum to one
    assert ramp_window(32, 8, False, False).tolist() == [1.0] * 32


def test_invalid_tile_configs():
    with pytest.raises(ConfigError):
        TileConfig(tile=4)
    with pytest.raises(ConfigError):
        TileConfig(tile=64, overlap=40)


def _float_out(dehazer, frame):
    return dehazer(frame).astype(np.float32)


def test_tiled_matches_whole_frame_away_from_borders(deep_onnx):
    frame = moving_frames(1, 150, 110, seed=2)[0]
    whole = _float_out(Dehazer(deep_onnx, device="cpu"), frame)
    tiled = _float_out(Dehazer(deep_onnx, device="cpu", tile=48, overlap=16), frame)
    assert tiled.shape == whole.shape
    diff = np.abs(tiled - whole)[8:-8, 8:-8]
    assert diff.max() <= 3.0, diff.max()  # uint8 levels
    assert diff.mean() < 0.3


def test_blending_removes_the_seams_that_hard_stitching_leaves(deep_onnx):
    frame = moving_frames(1, 150, 110, seed=4)[0]
    whole = _float_out(Dehazer(deep_onnx, device="cpu"), frame)
    blended = _float_out(Dehazer(deep_onnx, device="cpu", tile=48, overlap=16), frame)
    # overlap 0 with the same tiles = hard cuts where the network saw padding instead of context
    hard = _float_out(Dehazer(deep_onnx, device="cpu", tile=48, overlap=0), frame)

    def column_error(out):
        # per-column error profile; the outer 8 columns differ by frame-border padding, not by tiling
        return np.abs(out - whole)[8:-8, 8:-8].mean(axis=(0, 2))

    hard_err, blended_err = column_error(hard), column_error(blended)
    assert hard_err.max() > 3 * max(blended_err.max(), 0.05)
    # no column of the blended result stands out from its neighbours: no seam line
    assert blended_err.max() < 1.0
