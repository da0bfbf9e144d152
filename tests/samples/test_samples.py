"""The samples run as scripts; those needing absent components (OpenCV, GStreamer) skip with the reason."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.runtimes.media import make_video, probe, write_images

SAMPLES = REPO / "samples"


def run_sample(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SAMPLES / name), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), SAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_folder_dehazes_and_lists_skips(tmp_path, sample_model):
    write_images(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = run_sample(
        "batch_folder.py", tmp_path / "in", tmp_path / "out", "--model", sample_model, "--batch", 2
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_00.png", "img_01.png", "img_02.png"]
    assert "dehazed 3 images" in proc.stderr and "skipped" in proc.stderr and "broken.jpg" in proc.stderr


def test_batch_folder_reports_errors_with_exit_code_2(tmp_path, sample_model):
    proc = run_sample("batch_folder.py", tmp_path / "missing", tmp_path / "out", "--model", sample_model)
    assert proc.returncode == 2 and "input not found" in proc.stderr


def test_camera_opencv_on_a_video_capture(tmp_path, sample_model):
    pytest.importorskip("cv2", reason="OpenCV not installed (pip install opencv-python)")
    video = make_video(tmp_path / "cam.mp4", count=8, width=48, height=36)
    out = tmp_path / "clear.mp4"
    proc = run_sample(
        "camera_opencv.py", "--model", sample_model, "--camera", video, "--out", out, "--max-frames", 5
    )
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    assert info["frames"] == 5 and info["size"] == (48, 36)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_gstreamer_frame_hand_over_handles_padded_rows():
    module = load("gstreamer_appsink.py")
    width, height = 5, 3  # 15 bytes per row, GStreamer pads RGB rows to 16
    image = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    padded = np.zeros((height, 16), np.uint8)
    padded[:, :15] = image.reshape(height, 15)
    np.testing.assert_array_equal(module.frame_from_buffer(padded.tobytes(), width, height), image)
    np.testing.assert_array_equal(module.frame_from_buffer(image.tobytes(), width, height), image)
    with pytest.raises(ValueError):
        module.frame_from_buffer(b"\0" * 10, width, height)


def test_gstreamer_sample_end_to_end(tmp_path, sample_model):
    gi = pytest.importorskip("gi", reason="GStreamer Python bindings (PyGObject) not installed")
    gi.require_version("Gst", "1.0")
    video = make_video(tmp_path / "in.mp4", count=6, width=48, height=36)
    proc = run_sample(
        "gstreamer_appsink.py", "--model", sample_model, "--input", video, "--out", tmp_path / "out.mp4"
    )
    assert proc.returncode == 0, proc.stderr
    assert probe(tmp_path / "out.mp4")["frames"] == 6
