"""Flicker metric: 1 for an output that follows its input, grows with added flicker, ignores motion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dehazekit.metrics.flicker import FlickerMeter, flicker
from dehazekit.runtimes.errors import InputError
from tests.runtimes.video_seq import flickering_model, moving_square, static_scene


def test_output_equal_to_input_scores_one():
    frames = static_scene(count=6)
    result = flicker(frames, frames)
    assert result["ratio"] == pytest.approx(1.0)
    assert result["brightness_std_out"] == pytest.approx(result["brightness_std_in"])


def test_ratio_grows_with_flicker_amplitude():
    frames = static_scene(count=20)
    low = flicker(frames, flickering_model(frames, amplitude=3))["ratio"]
    high = flicker(frames, flickering_model(frames, amplitude=15))["ratio"]
    assert 1.0 < low < high


def test_moving_regions_are_not_counted():
    # The output differs from the input only on the moving square (painted 40 levels darker): its
    # output changes every frame, but so does the input there, so none of it counts as flicker.
    rng = np.random.default_rng(0)
    frames = [np.clip(f + rng.normal(0, 1.0, f.shape), 0, 255).astype(np.uint8) for f in moving_square()]
    outs = []
    for i, f in enumerate(frames):
        out = f.copy()
        out[16:32, 4 + i * 4 : 20 + i * 4] -= 40
        outs.append(out)
    assert flicker(frames, outs, block=4)["ratio"] == pytest.approx(1.0, abs=0.05)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(InputError, match="2 frames"):
        flicker(static_scene(count=1), static_scene(count=1))
    with pytest.raises(InputError, match="uint8"):
        FlickerMeter().update(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from tests.runtimes.onnx_models import export_tiny

    return export_tiny(tmp_path_factory.mktemp("models") / "tiny.onnx")


def test_eval_video_cli_writes_flicker_json(tmp_path, tiny_onnx):
    from typer.testing import CliRunner

    from dehazekit.cli.main import app
    from tests.runtimes.media import make_video

    video = make_video(tmp_path / "clip.mp4", count=8, width=48, height=32)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--video",
            str(video),
            "--model",
            str(tiny_onnx),
            "--stabilize",
            "--out",
            str(tmp_path / "rep"),
            "--max-frames",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "video_report.json").read_text())
    assert report["frames"] == 6
    assert set(report["flicker"]) == {"raw", "stabilized"}
    assert report["flicker"]["raw"]["ratio"] > 0
