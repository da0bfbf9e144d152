"""rtsp/camera sources through optional OpenCV, and the clear error when OpenCV is absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dehazekit.runtimes import Dehazer, open_sink, open_source, run_pipeline
from dehazekit.runtimes.streams import OpenCVSource, camera_index, is_stream_url
from tests.conftest import REPO
from tests.runtimes.media import make_video, probe


def test_source_kinds_are_recognised():
    assert camera_index(0) == 0 and camera_index("2") == 2 and camera_index("camera:1") == 1
    assert camera_index("video.mp4") is None and camera_index(True) is None
    assert is_stream_url("rtsp://10.0.0.2/stream") and not is_stream_url("clip.mp4")


def test_camera_without_opencv_names_the_package():
    code = textwrap.dedent("""
        import sys
        sys.modules['cv2'] = None
        from dehazekit.runtimes import open_source
        from dehazekit.runtimes.errors import MissingDependencyError
        for spec in (0, "rtsp://camera.local/stream"):
            try:
                open_source(spec)
            except MissingDependencyError as exc:
                print(exc)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all("opencv-python" in line and "pip install" in line for line in lines)


def test_opencv_capture_source_through_the_pipeline(tmp_path, tiny_onnx):
    cv2 = pytest.importorskip("cv2", reason="OpenCV not installed (optional: pip install opencv-python)")
    video = make_video(tmp_path / "stream.mp4", count=9, width=40, height=30)
    source = OpenCVSource(str(video), max_frames=7)  # a file stands in for an rtsp:// URL
    assert source.info.kind == "stream" and source.info.size == (40, 30)
    report = run_pipeline(source, open_sink(tmp_path / "out.mp4", source), Dehazer(tiny_onnx))
    assert report.frames == 7 and probe(tmp_path / "out.mp4")["frames"] == 7
    # frames come out RGB unless asked for BGR
    rgb = next(iter(OpenCVSource(str(video), max_frames=1))).image
    bgr = next(iter(OpenCVSource(str(video), bgr=True, max_frames=1))).image
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    ok, raw = cv2.VideoCapture(str(video)).read()
    assert ok
    np.testing.assert_array_equal(bgr, raw)


def test_unavailable_camera_is_a_clear_error():
    pytest.importorskip("cv2", reason="OpenCV not installed")
    from dehazekit.runtimes.errors import VideoError

    with pytest.raises(VideoError, match="cannot open camera/stream"):
        open_source(99)
