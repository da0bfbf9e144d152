"""Model files: the fast ONNX path by default (torch only as a named fallback), wrong or hostile files
refused in one line without running their code, and the summary names threads and runtime."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dehazekit.cli.run_model import STAMP, build_cached_onnx, choose_model, verified_onnx
from tests.reliability.conftest import assert_user_error, digest_tree, invoke, rgb
from tests.runtimes.media import make_video


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A saved tiny-gunet model folder (model.safetensors + model.json), as adapt writes one."""
    import torch

    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(create_backbone("tiny-gunet").eval(), folder)
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DEHAZEKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_default_model_is_built_once_as_verified_onnx_and_reused(tiny_folder, cache):
    first = choose_model(None, tiny_folder)
    assert first.route == "onnx" and first.path.parent.parent == cache / "onnx"
    stamp = json.loads((first.path.parent / STAMP).read_text())
    assert stamp["parity_passed"] is True
    built = first.path.stat().st_mtime_ns
    again = choose_model(None, tiny_folder)
    assert again.path == first.path and again.path.stat().st_mtime_ns == built  # reused, not rebuilt


def test_tampered_cached_onnx_is_not_trusted(tiny_folder, cache):
    path = build_cached_onnx(tiny_folder)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    assert verified_onnx(path.parent, tiny_folder / "model.safetensors") is None
    rebuilt = build_cached_onnx(tiny_folder)
    assert verified_onnx(rebuilt.parent, tiny_folder / "model.safetensors") == rebuilt


def test_folder_with_verified_onnx_runs_on_onnxruntime(tmp_path, tiny_folder):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    result = invoke("export", folder)  # writes model.onnx + a passing model.parity.json
    assert result.exit_code == 0, result.output
    Image.fromarray(rgb(16, 16)).save(tmp_path / "a.png")
    result = invoke("run", tmp_path / "a.png", "--model", folder, "--out", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    assert "onnxruntime (verified model.onnx" in result.output.replace("\n", " ")


def test_folder_without_verified_onnx_names_the_torch_fallback(tmp_path, tiny_folder):
    Image.fromarray(rgb(16, 16)).save(tmp_path / "a.png")
    result = invoke("run", tmp_path / "a.png", "--model", tiny_folder, "--out", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "torch (torch fallback:" in text and "dehazekit export" in text


def test_run_without_model_takes_the_onnx_path(tmp_path, cache):
    """The mission command `dehazekit run video.mp4`: bundled model, cached verified ONNX (builds once)."""
    clip = make_video(tmp_path / "video.mp4", count=4, width=64, height=48)
    result = invoke("run", clip)
    assert result.exit_code == 0, result.output
    assert "onnxruntime (bundled model, cached ONNX" in " ".join(result.output.split())
    assert (tmp_path / "video_dehazed.mp4").is_file()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_model(kind: str, folder: Path, marker: Path) -> tuple[Path, str, tuple[str, ...]]:
    """(model path, command, phrases) for one kind of wrong model file."""
    if kind == "text_as_onnx":
        (folder / "m.onnx").write_text("not a model")
        return folder / "m.onnx", "run", ("cannot load m.onnx as an ONNX model",)
    if kind == "garbage_safetensors":
        (folder / "m.safetensors").write_bytes(os.urandom(256))
        return folder / "m.safetensors", "run", ("m.safetensors",)
    if kind == "unknown_suffix":
        (folder / "m.h5").write_bytes(b"\x89HDF")
        return folder / "m.h5", "run", ("no runtime backend for '.h5' files",)
    if kind == "missing":
        return folder / "nothing.onnx", "run", ("model file not found",)
    if kind == "empty_folder":
        (folder / "empty").mkdir()
        return folder / "empty", "run", ("model folder incomplete",)
    if kind == "malicious_plain_pickle":  # a pickle that runs a shell command when unpickled
        with open(folder / "evil.pth", "wb") as fh:
            pickle.dump({"hook": _Evil(marker)}, fh)
        return folder / "evil.pth", "export", ("not a torch checkpoint",)
    import torch

    torch.save({"hook": _Evil(marker)}, folder / "evil.pth")  # the same payload inside a torch checkpoint
    return folder / "evil.pth", "export", ("no tensors",)


@pytest.mark.parametrize(
    "kind",
    [
        "text_as_onnx",
        "garbage_safetensors",
        "unknown_suffix",
        "missing",
        "empty_folder",
        "malicious_plain_pickle",
        "malicious_torch_checkpoint",
    ],
)
def test_wrong_or_hostile_model_file_is_one_line_and_runs_no_code(tmp_path, kind):
    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "pwned"
    Image.fromarray(rgb(16, 16)).save(tmp_path / "a.png")
    model, command, phrases = _write_model(kind, models, marker)
    before = digest_tree(tmp_path)
    if command == "run":
        result = invoke("run", tmp_path / "a.png", "--model", model, "--out", tmp_path / "out.png")
    else:
        result = invoke("export", model, "--backbone", "tiny-gunet", "--onnx", tmp_path / "out.onnx")
    assert_user_error(result, 2, *phrases)
    assert not marker.exists()  # the pickle's code never ran
    assert digest_tree(tmp_path) == before
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    "source, args, expected",
    [
        ("image", (), "1 inference (2 cores - 1 for decode/encode)"),
        ("video", (), "1 inference (2 cores - 2 for decode/encode)"),
        ("image", ("--threads", "2"), "2 inference (as requested)"),
    ],
)
def test_summary_names_the_thread_pick(tmp_path, identity_onnx, source, args, expected, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # a 2-core machine
    if source == "image":
        src = tmp_path / "a.png"
        Image.fromarray(rgb(16, 16)).save(src)
    else:
        src = make_video(tmp_path / "a.mp4", count=3)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / f"out{src.suffix}", *args)
    assert result.exit_code == 0, result.output
    assert expected in result.output


def test_piped_run_prints_steady_progress_lines(tmp_path, identity_onnx, monkeypatch):
    monkeypatch.setenv("DEHAZEKIT_PROGRESS_SECONDS", "0")  # a line per frame, to count them
    clip = make_video(tmp_path / "a.mp4", count=5)
    result = invoke("run", clip, "--model", identity_onnx, "--out", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("dehazing: ")]
    assert [line.split()[1] for line in lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert all("fps" in line and "ETA" in line for line in lines)


def test_memory_budget_tiles_with_the_same_blend_as_tile(tiny_onnx):
    from dehazekit.runtimes import Dehazer

    frame = rgb(300, 420)
    with Dehazer(tiny_onnx, max_memory=2_000_000) as auto:
        out_auto = auto(frame)
        plan = next(iter(auto.memory_plans.values()))
        assert plan.tile is not None and "auto tiles of" in auto.describe()["tiling"]
    with Dehazer(tiny_onnx, tile=plan.tile, overlap=min(64, plan.tile // 2 - 1)) as fixed:
        np.testing.assert_array_equal(out_auto, fixed(frame))
    with Dehazer(tiny_onnx, max_memory=None) as whole:
        assert (
            np.abs(whole(frame).astype(int) - out_auto).max() <= 2
        )  # seam-free: tiles match the whole frame
