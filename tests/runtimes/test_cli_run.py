"""`dehazekit run` and `dehazekit bench` through typer's CliRunner."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dehazekit.cli.main import app
from tests.runtimes.media import make_video, probe, write_images

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_run_video_writes_same_count_size_and_summary(tmp_path, tiny_onnx):
    src = make_video(tmp_path / "in.mp4", count=10, width=42, height=58, fps=10)  # portrait, odd multiples
    result = invoke("run", src, "--model", tiny_onnx, "--out", tmp_path / "out.mp4", "--batch", 2)
    assert result.exit_code == 0, result.output
    after = probe(tmp_path / "out.mp4")
    assert after["frames"] == 10 and after["size"] == (42, 58) and after["fps"] == pytest.approx(10, rel=0.01)
    for key in ("frames", "seconds", "fps", "backend", "providers"):
        assert re.search(rf"{key}\s", result.output), key
    assert "onnxruntime" in result.output and "CPUExecutionProvider" in result.output


def test_run_default_output_and_side_by_side_folder(tmp_path, tiny_onnx):
    write_images(tmp_path / "pics", 2, width=40, height=30)
    result = invoke("run", tmp_path / "pics", "--model", tiny_onnx, "--side-by-side")
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "pics_dehazed").iterdir())
    assert [p.name for p in outputs] == ["img_00.png", "img_01.png"]
    pair = np.asarray(Image.open(outputs[0]))
    original = np.asarray(Image.open(tmp_path / "pics" / "img_00.png"))
    assert pair.shape == (30, 80, 3)
    np.testing.assert_array_equal(pair[:, :40], original)  # left half is the input


def test_run_single_image_with_tiles(tmp_path, tiny_onnx):
    Image.fromarray(np.full((70, 90, 3), 128, np.uint8)).save(tmp_path / "a.jpg")
    result = invoke(
        "run",
        tmp_path / "a.jpg",
        "--model",
        tiny_onnx,
        "--tile",
        32,
        "--overlap",
        8,
        "--out",
        tmp_path / "b.png",
    )
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == (70, 90, 3)


def test_run_errors_are_one_clear_line(tmp_path, tiny_onnx):
    missing = invoke("run", tmp_path / "none.mp4", "--model", tiny_onnx)
    assert missing.exit_code == 2 and "input not found" in missing.output
    bad_model = invoke("run", tmp_path, "--model", tmp_path / "none.onnx")
    assert bad_model.exit_code == 2 and "model file not found" in bad_model.output
    assert "Traceback" not in missing.output + bad_model.output


def test_run_without_model_needs_the_default_or_says_so(tmp_path):
    try:
        from dehazekit.models import default_model_path

        if (default_model_path() / "model.safetensors").is_file():
            pytest.skip("a bundled default model is installed here")
    except (ImportError, AttributeError):
        pass
    write_images(tmp_path / "pics", 1)
    result = invoke("run", tmp_path / "pics")
    assert result.exit_code == 2 and "--model" in result.output


def test_bench_prints_model_only_and_end_to_end_per_backend(tiny_onnx):
    result = invoke(
        "bench",
        tiny_onnx,
        "--size",
        "64x48",
        "--batch",
        "1,2",
        "--frames",
        4,
        "--seconds",
        0.05,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "onnxruntime/CPU" in line]
    assert len(rows) == 2
    numbers = [float(v) for v in re.findall(r"\d+\.\d+", rows[0])]
    assert len(numbers) == 3 and all(v > 0 for v in numbers)
    assert invoke("bench", tiny_onnx, "--size", "64by48").exit_code == 2


def test_bgr_flag_changes_the_carrier_order_not_the_result(tmp_path, tiny_onnx):
    write_images(tmp_path / "pics", 2)
    for flag, out in (([], "rgb"), (["--bgr"], "bgr")):
        result = invoke("run", tmp_path / "pics", "--model", tiny_onnx, "--out", tmp_path / out, *flag)
        assert result.exit_code == 0, result.output
    for name in ("img_00.png", "img_01.png"):
        rgb = np.asarray(Image.open(tmp_path / "rgb" / name))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "bgr" / name)), rgb)
        assert (
            np.abs(rgb.astype(int) - np.asarray(Image.open(tmp_path / "pics" / name)).astype(int)).max() > 0
        )
