"""The quickstart flow (samples/quickstart.sh) on the bundled synthetic-haze model and the shipped samples:
adapt (Python API, weights="synthetic") -> `dehazekit export` -> `dehazekit run`, with tiny step counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dehazekit.cli.main import app
from dehazekit.runtimes.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "samples" / "images"
VIDEO = REPO / "samples" / "video" / "hazy_rocket.mp4"
runner = CliRunner()


def _video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(decoded frame count, (width, height)) of the first video stream."""
    import av

    with av.open(str(path)) as container:
        count, size = 0, None
        for frame in container.decode(video=0):
            count, size = count + 1, (frame.width, frame.height)
    return count, size


def test_quickstart_adapt_export_run(tmp_path: Path) -> None:
    from dehazekit.adapt import adapt
    from dehazekit.runtimes.meta import ModelMeta

    out = tmp_path / "quickstart"
    result = adapt(
        IMAGES,
        backbone="gunet-t",
        weights="synthetic",
        objective="dcp",
        search_steps=2,
        finetune_steps=2,
        size=64,
        batch_size=2,
        checkpoint_every=0,
        out=str(out),
    )
    assert result.backbone == "gunet-t" and len(result.selected_blocks) == 3
    assert ModelMeta.load(out / "model.json").backbone == "gunet-t"
    assert (out / "report" / "before_after.png").stat().st_size > 0

    exported = runner.invoke(app, ["export", str(out)])
    assert exported.exit_code == 0, exported.output
    assert (out / "model.onnx").stat().st_size > 0
    parity = json.loads((out / "model.parity.json").read_text())
    assert parity["passed"] is True and parity["cases"]
    assert parity["onnx"] == str(out / "model.onnx")  # the artifact, not export's temporary file

    video = out / "dehazed.mp4"
    ran = runner.invoke(app, ["run", str(VIDEO), "--model", str(out / "model.onnx"), "--out", str(video)])
    assert ran.exit_code == 0, ran.output
    assert _video_frames(video) == _video_frames(VIDEO)


def test_default_weights_must_match_backbone(tmp_path: Path) -> None:
    from dehazekit.adapt import adapt

    # Fails before any data is read or any step is taken, naming the default model's backbone.
    with pytest.raises(ConfigError, match="gunet-t"):
        adapt(IMAGES, backbone="tiny-dea", weights="default", objective="dcp", out=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
