"""`dehazekit adapt` through typer's CliRunner: tiny backbone + tiny CLIP, a handful of generated images."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dehazekit.cli.main import app
from tests.dehazekit.adapt.conftest import write_hazy_images

TINY_CLIP = Path(__file__).resolve().parents[2] / "data" / "tiny_clip.json"
runner = CliRunner()


def _args(images: Path, out: Path, *extra: str) -> list[str]:
    return [
        "adapt",
        "--images",
        str(images),
        "--backbone",
        "tiny-gunet",
        "--weights",
        "random",
        "--search-steps",
        "3",
        "--finetune-steps",
        "2",
        "--batch-size",
        "2",
        "--size",
        "32",
        "--out",
        str(out),
        *extra,
    ]


def test_adapt_cli_h2c_with_tiny_clip(tmp_path: Path) -> None:
    images = tmp_path / "hazy"
    write_hazy_images(images, 5)
    (images / "notes.md").write_text("not an image")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        _args(
            images,
            out,
            "--objective",
            "h2c+dcp",
            "--clip",
            str(TINY_CLIP),
            "--clip-pretrained",
            "none",
            "--prompt",
            "a foggy road|a clear road",
            "--top-k",
            "2",
            "--checkpoint-every",
            "2",
        ),
    )
    assert result.exit_code == 0, result.output
    assert "search" in result.output and "step/s" in result.output and "ETA" in result.output
    assert "selected" in result.output and "notes.md" in result.output
    info = json.loads((out / "adapter.json").read_text())
    assert info["objective"] == "h2c+dcp" and info["prompts"] == [["a foggy road", "a clear road"]]
    assert len(info["blocks"]) == 2
    for name in (
        "model.safetensors",
        "model.json",
        "report/gates.png",
        "report/loss.png",
        "report/before_after.png",
        "report/summary.json",
    ):
        assert (out / name).is_file(), name


def test_adapt_cli_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, _args(tmp_path / "empty", tmp_path / "o1", "--objective", "dcp"))
    assert result.exit_code == 2 and "no usable image" in result.output
    write_hazy_images(tmp_path / "hazy", 3)
    result = runner.invoke(
        app, _args(tmp_path / "hazy", tmp_path / "o2", "--objective", "dcp", "--top-k", "9")
    )
    assert result.exit_code == 2 and "top-k" in result.output and "Traceback" not in result.output
    result = runner.invoke(
        app, _args(tmp_path / "hazy", tmp_path / "o3", "--objective", "dcp", "--prompt", "no separator")
    )
    assert result.exit_code == 2 and "--prompt" in result.output
    result = runner.invoke(app, _args(tmp_path / "hazy", tmp_path / "o4", "--objective", "dcp", "--resume"))
    assert result.exit_code == 2 and "no checkpoint" in result.output
    result = runner.invoke(
        app, _args(tmp_path / "hazy", tmp_path / "o5", "--objective", "dcp", "--gate-threshold", "0.99")
    )
    assert result.exit_code == 2 and "threshold" in result.output


def test_adapt_cli_gate_threshold_without_cap(tmp_path: Path) -> None:
    write_hazy_images(tmp_path / "hazy", 4)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        _args(
            tmp_path / "hazy", out, "--objective", "dcp", "--gate-threshold", "0.4", "--checkpoint-every", "0"
        ),
    )
    assert result.exit_code == 0, result.output
    info = json.loads((out / "adapter.json").read_text())
    assert len(info["blocks"]) == 7  # every gate is near 0.5 after 3 steps: all pass 0.4, no top-k cap
    assert not (out / "checkpoint").exists()


def test_adapt_cli_offline_clip_names_the_ways_out(tmp_path: Path, monkeypatch) -> None:
    import time

    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    write_hazy_images(tmp_path / "hazy", 3)
    start = time.monotonic()
    result = runner.invoke(app, _args(tmp_path / "hazy", tmp_path / "out", "--objective", "h2c"))
    assert time.monotonic() - start < 60  # failing, not hanging in download retries (not a speed claim)
    assert result.exit_code == 2
    assert "--clip-weights" in result.output and "--objective offline" in result.output
    assert not (tmp_path / "out").exists()
