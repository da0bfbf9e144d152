"""The product's own commands, typed exactly as the README and the mission state them.

`dehazekit adapt --images real/ --backbone convir` is covered in test_first_hour.py (a one-line error naming
the weights to use, before torch loads). Here: `dehazekit export --trt` then `dehazekit run video.mp4`, run in
an empty working folder: nothing may land in the current folder, export must not need TensorRT to leave a
verified ONNX model, and run must take that fast ONNX path by default.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dehazekit.cli.main import app
from tests.conftest import REPO

SAMPLE_VIDEO = REPO / "samples" / "video" / "hazy_rocket.mp4"


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEHAZEKIT_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_export_trt_then_run_video_as_written(workdir: Path) -> None:
    from dehazekit.cli.run_model import cache_target, verified_onnx
    from dehazekit.models import default_model_path

    exported = CliRunner().invoke(app, ["export", "--trt"])
    has_trt = importlib.util.find_spec("tensorrt") is not None
    assert exported.exit_code == (0 if has_trt else 3), exported.output
    if not has_trt:
        assert "pip install 'dehazekit[trt]'" in exported.output and "trtexec" in exported.output
    assert list(workdir.iterdir()) == []  # nothing written into the current folder
    target = cache_target(default_model_path())
    assert verified_onnx(target, default_model_path() / "model.safetensors") == target / "model.onnx"

    shutil.copy(SAMPLE_VIDEO, workdir / "video.mp4")
    ran = CliRunner().invoke(app, ["run", "video.mp4"])
    assert ran.exit_code == 0, ran.output
    assert "onnxruntime" in ran.output and "torch" not in ran.output.split("backend", 1)[1].split("\n", 1)[0]
    assert sorted(p.name for p in workdir.iterdir()) == ["video.mp4", "video_dehazed.mp4"]
    assert (workdir / "video_dehazed.mp4").stat().st_size > 0
