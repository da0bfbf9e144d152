"""`dehazekit export` through typer's CliRunner: outputs, parity gate, --trt fallback, early rejections."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from dehazekit.backbones import create_backbone, get_spec, list_backbones
from dehazekit.cli.main import app
from dehazekit.exporters.onnx_export import read_meta

runner = CliRunner()
NO_TRT = importlib.util.find_spec("tensorrt") is None


def _run(*args: str):
    result = runner.invoke(app, ["export", *args])
    text = result.output + (getattr(result, "stderr", "") or "")
    return result.exit_code, " ".join(text.split())  # rich wraps long lines


def test_backbone_export_writes_onnx_and_report(tmp_path):
    code, text = _run("--backbone", "tiny-gunet", "--onnx", str(tmp_path / "g.onnx"))
    assert code == 0, text
    report = json.loads((tmp_path / "g.parity.json").read_text())
    assert report["passed"] and report["precision"] == "fp32" and len(report["cases"]) == 2
    assert read_meta(tmp_path / "g.onnx").backbone == "tiny-gunet"
    assert not list(tmp_path.glob(".*unverified*"))


def test_model_folder_fp16_keeps_adapter_facts(tmp_path):
    from dehazekit.models import save_model

    save_model(create_backbone("tiny-dea"), tmp_path, adapter_digest="abc123", selected_blocks=["down1"])
    code, text = _run(str(tmp_path), "--fp16")
    assert code == 0, text
    meta = read_meta(tmp_path / "model.fp16.onnx")
    assert (meta.precision, meta.adapter_digest, meta.selected_blocks) == ("fp16", "abc123", ["down1"])


@pytest.mark.skipif(not NO_TRT, reason="tensorrt is installed: the engine is built instead")
def test_trt_without_tensorrt_writes_onnx_and_explains(tmp_path):
    code, text = _run(
        "--backbone",
        "tiny-gunet",
        "--onnx",
        str(tmp_path / "g.onnx"),
        "--trt",
        "--opt-shape",
        "1x3x512x512",
        "--workspace",
        "2",
    )
    assert code == 3, text
    assert (tmp_path / "g.onnx").is_file()
    assert "pip install 'dehazekit[trt]'" in text
    assert f"trtexec --onnx={tmp_path / 'g.onnx'}" in text and "--optShapes=hazy:1x3x512x512" in text
    assert "--memPoolSize=workspace:2048M" in text


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--int8"], "calibration"),
        (["--min-shape", "1x3x256x256"], "without --trt"),
        (["--opset", "9"], "opset"),
        (["--trt", "--max-shape", "1x3x256"], "invalid shape"),
        (["--verify-images", "/nonexistent/dir"], "folder"),
    ],
)
def test_unsupported_combinations_rejected_up_front(tmp_path, args, needle):
    code, text = _run("--backbone", "tiny-gunet", "--onnx", str(tmp_path / "g.onnx"), *args)
    assert code == 2 and needle in text, text
    assert not (tmp_path / "g.onnx").exists()


def test_unknown_backbone_suggests(tmp_path):
    code, text = _run("--backbone", "tiny-gunett", "--onnx", str(tmp_path / "g.onnx"))
    assert code == 2 and "did you mean" in text and "tiny-gunet" in text


def test_not_exportable_backbone_says_why(tmp_path):
    blocked = [n for n in list_backbones() if not get_spec(n).exportable]
    if not blocked:
        pytest.skip("every registered backbone exports")
    code, text = _run("--backbone", blocked[0], "--onnx", str(tmp_path / "x.onnx"))
    assert code == 2 and "cannot be exported" in text


def test_failed_parity_refuses_unless_forced(tmp_path, monkeypatch):
    from dehazekit.exporters import verify as verify_mod

    # An unreachable tolerance makes the (real) comparison fail, as a broken export would.
    monkeypatch.setattr(verify_mod.Tolerance, "for_precision", classmethod(lambda cls, p: cls(max_abs=1e-30)))
    out = tmp_path / "g.onnx"
    code, text = _run("--backbone", "tiny-gunet", "--onnx", str(out))
    assert code == 2 and "--force" in text and not out.exists()
    assert json.loads((tmp_path / "g.parity.json").read_text())["passed"] is False
    code, text = _run("--backbone", "tiny-gunet", "--onnx", str(out), "--force")
    assert code == 0 and out.is_file() and "FAILED" in text
