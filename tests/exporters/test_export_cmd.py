"""`dehazekit export` through typer's CliRunner: outputs, parity gate, --trt fallback, early rejections."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dehazekit.backbones import create_backbone, get_spec, list_backbones
from dehazekit.cli.main import app
from dehazekit.exporters.formats import ARGS, FORMATS, formats_markdown
from dehazekit.exporters.onnx_export import read_meta

runner = CliRunner()
NO_TRT = importlib.util.find_spec("tensorrt") is None
README = Path(__file__).resolve().parents[2] / "README.md"


def _run(*args: str):
    result = runner.invoke(app, ["export", *args])
    return result.exit_code, " ".join(result.output.split())  # stdout + stderr; rich wraps long lines


def test_backbone_export_writes_onnx_report_and_progress(tmp_path):
    code, text = _run("--backbone", "tiny-gunet", "-o", str(tmp_path / "g.onnx"))
    assert code == 0, text
    report = json.loads((tmp_path / "g.parity.json").read_text())
    assert report["passed"] and report["precision"] == "fp32" and len(report["cases"]) == 3
    assert report["onnx"] == str(tmp_path / "g.onnx")
    assert read_meta(tmp_path / "g.onnx").backbone == "tiny-gunet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx", "g.parity.json"]
    # CliRunner's stdout is not a terminal: one progress line per stage
    for i, stage in enumerate(["load", "onnx", "parity", "write"], 1):
        assert f"export [{i}/4] {stage}:" in text


def test_model_folder_fp16_writes_beside_it_with_adapter_facts(tmp_path, monkeypatch):
    from dehazekit.models import save_model

    save_model(create_backbone("tiny-dea"), tmp_path, adapter_digest="abc123", selected_blocks=["down1"])
    monkeypatch.chdir(tmp_path.parent)
    before = set(tmp_path.parent.iterdir())
    code, text = _run(str(tmp_path), "--fp16", "--parity-size", "0")
    assert code == 0, text
    meta = read_meta(tmp_path / "model.fp16.onnx")
    assert (meta.precision, meta.adapter_digest, meta.selected_blocks) == ("fp16", "abc123", ["down1"])
    assert (tmp_path / "model.fp16.parity.json").is_file()
    assert set(tmp_path.parent.iterdir()) == before  # nothing lands in the current directory


@pytest.mark.parametrize("flag", ["--onnx", "--out"])
def test_output_over_the_source_weights_is_refused(tmp_path, flag):
    from dehazekit.models import save_model

    save_model(create_backbone("tiny-gunet"), tmp_path)
    weights = (tmp_path / "model.safetensors").read_bytes()
    code, text = _run(str(tmp_path), flag, str(tmp_path / "model.safetensors"))
    assert code == 2 and "overwrite an input" in text and f"choose another {flag}" in text, text
    assert "Traceback" not in text and text.count("error:") == 1
    assert "export [1/" not in text  # refused before any work
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.skipif(not NO_TRT, reason="tensorrt is installed: the engine is built instead")
def test_trt_without_tensorrt_writes_onnx_and_explains(tmp_path):
    code, text = _run(
        "--backbone", "tiny-gunet", "--out", str(tmp_path), "--trt", "--opt-shape", "1x3x512x512",
        "--workspace", "2",
    )  # fmt: skip
    assert code == 3, text
    assert (tmp_path / "model.onnx").is_file() and "export [6/6] engine: skipped" in text
    assert "pip install 'dehazekit[trt]'" in text
    assert f"trtexec --onnx={tmp_path / 'model.onnx'}" in text and "--optShapes=hazy:1x3x512x512" in text
    assert "--memPoolSize=workspace:2048M" in text


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--int8"], "calibration"),
        (["--min-shape", "1x3x256x256"], "add --trt"),
        (["--opset", "9"], "opset"),
        (["--trt", "--max-shape", "1x3x256"], "invalid shape"),
        (["--verify-images", "/nonexistent/dir"], "folder"),
        (["--backbone", "tiny-gunett"], "did you mean"),
    ],
)
def test_unsupported_combinations_rejected_up_front(tmp_path, args, needle):
    base = [] if "--backbone" in args else ["--backbone", "tiny-gunet"]
    code, text = _run(*base, "--out", str(tmp_path / "g.onnx"), *args)
    assert code == 2 and needle in text, text
    assert not list(tmp_path.iterdir())


def test_backbone_alone_needs_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = _run("--backbone", "tiny-gunet")
    assert code == 2 and "out" in text and not list(tmp_path.iterdir()), text


def test_not_exportable_backbone_says_why(tmp_path):
    blocked = [n for n in list_backbones() if not get_spec(n).exportable]
    if not blocked:
        pytest.skip("every registered backbone exports")
    code, text = _run("--backbone", blocked[0], "--out", str(tmp_path / "x.onnx"))
    assert code == 2 and "not exportable" in text


def test_failed_parity_refuses_unless_forced(tmp_path, monkeypatch):
    from dehazekit.exporters import verify as verify_mod

    # An unreachable tolerance makes the (real) comparison fail, as a broken export would.
    monkeypatch.setattr(verify_mod.Tolerance, "for_precision", classmethod(lambda cls, p: cls(max_abs=1e-30)))
    out = tmp_path / "g.onnx"
    code, text = _run("--backbone", "tiny-gunet", "--out", str(out), "--parity-size", "0")
    assert code == 2 and "--force" in text and not out.exists()
    assert json.loads((tmp_path / "g.parity.json").read_text())["passed"] is False
    code, text = _run("--backbone", "tiny-gunet", "--out", str(out), "--force", "--parity-size", "0")
    assert code == 0 and out.is_file() and "FAILED" in text


def test_format_table_drives_cli_and_readme():
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    for arg in ARGS.values():
        assert arg.flag in result.output, arg.flag
    assert formats_markdown() in README.read_text(), "README export table is stale: paste formats_markdown()"
    assert set(FORMATS) == {"onnx", "engine"}
