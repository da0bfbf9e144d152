"""The first hour of a new user: the mission command as written, early argument errors, flags and help.

The mission command runs in a subprocess with torch made unimportable: an argument error that needs
torch (or CLIP) before it can be reported fails these tests, so "before torch loads" is checked, not timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from dehazekit.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples" / "images"
runner = CliRunner()


def _cli_without_torch(
    tmp_path: Path, *args: str, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """Run `dehazekit ARGS` in a fresh interpreter where `import torch` raises."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "torch.py").write_text("raise ImportError('torch is blocked in this test')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]),
        "COLUMNS": "200",
        **(env or {}),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "dehazekit.cli.main", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    return proc, time.monotonic() - start


def test_mission_command_as_written_names_every_way_to_weights(tmp_path: Path) -> None:
    proc, seconds = _cli_without_torch(tmp_path, "adapt", "--images", str(SAMPLES), "--backbone", "convir")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "torch is blocked" not in out
    assert "convir-s" in out  # the family name resolved to its documented default variant
    assert "--weights synthetic" in out and "dehazekit pretrain" in out and "--weights random" in out
    assert "github.com/c-yn/ConvIR" in out  # where the official checkpoints come from
    assert not (tmp_path / "adapt_out").exists()
    print(f"time to the error: {seconds:.2f} s")


def test_argument_errors_come_before_torch(tmp_path: Path) -> None:
    proc, _ = _cli_without_torch(
        tmp_path, "adapt", "--images", str(SAMPLES), "--backbone", "convirr", "--weights", "default"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "unknown backbone" in out and "did you mean convir" in out, out
    assert "tiny-" not in out  # test-only configs are not offered
    proc, _ = _cli_without_torch(
        tmp_path, "adapt", "--images", str(tmp_path / "nope"), "--backbone", "gunet", "--weights", "default"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "--images does not exist" in out, out
    proc, _ = _cli_without_torch(
        tmp_path,
        "adapt",
        "--images",
        str(SAMPLES),
        "--backbone",
        "dea-net",
        "--weights",
        str(tmp_path / "missing.pth"),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "--weights does not exist" in out, out
    proc, _ = _cli_without_torch(
        tmp_path, "adapt", "--images", str(SAMPLES), "--backbone", "convir", "--weights", "default"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "bundled gunet-t model" in out, out


def test_offline_clip_error_comes_before_torch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "HF_HUB_OFFLINE": "1",
    }
    proc, _ = _cli_without_torch(
        tmp_path, "adapt", "--images", str(SAMPLES), "--backbone", "gunet", "--weights", "default", env=env
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "--clip-weights" in out and "--objective offline" in out, out
    assert "torch is blocked" not in out and not (tmp_path / "adapt_out").exists()


def test_gunet_with_bundled_weights_adapts_and_reports_progress_when_piped(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "adapt",
            "--images",
            str(SAMPLES),
            "--backbone",
            "gunet",
            "--weights",
            "synthetic",
            "--objective",
            "dcp",
            "--search-steps",
            "2",
            "--finetune-steps",
            "2",
            "--size",
            "32",
            "--batch-size",
            "2",
            "--out",
            str(out_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out_dir / "model.json").read_text())["backbone"] == "gunet-t"
    # CliRunner's stdout is not a terminal: plain progress lines with step, rate, ETA and loss.
    lines = [ln for ln in result.output.splitlines() if ln.startswith(("search ", "finetune "))]
    assert any(ln.startswith("search 1/2") for ln in lines), result.output
    assert any(ln.startswith("finetune 2/2") for ln in lines), result.output
    assert all("ETA" in ln and "loss" in ln and ("step/s" in ln or "s/step" in ln) for ln in lines)
    assert "ETA ?" not in result.output


def test_mistyped_options_get_real_suggestions() -> None:
    result = runner.invoke(app, ["export", "--half"])
    assert (
        result.exit_code == 2
        and "--fp16" in result.output
        and "Possible options: --help" not in result.output
    )
    result = runner.invoke(app, ["adapt", "--finetune", "3"])
    assert "--finetune-steps" in result.output
    result = runner.invoke(app, ["synth", "--clear", ".", "--out", "x", "--preset", "realistic"])
    assert result.exit_code == 2 and "--haze-preset" in result.output


def test_help_is_plain(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["--help"], *([c, "--help"] for c in ("adapt", "export", "run", "pretrain", "backbones"))):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "<bool>" not in result.output, args
    help_text = runner.invoke(app, ["adapt", "--help"]).output
    for flag in ("--video-frames", "--preview-count", "--time-budget", "--weights"):
        assert flag in help_text


def test_backbones_listing_hides_test_configs_and_fits_80_columns(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["backbones"])
    assert result.exit_code == 0 and "tiny-" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "convir-s" in result.output and "convir" in result.output


def test_objective_clip_suggests_h2c() -> None:
    import pytest

    from dehazekit.objectives import create_objective
    from dehazekit.runtimes.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean h2c"):
        create_objective("clip")
