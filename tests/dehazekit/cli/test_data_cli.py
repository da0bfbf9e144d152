"""`dehazekit synth`, `pretrain`, `eval` end to end through typer's CliRunner (tiny backbone, few steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from dehazekit.cli.main import app
from dehazekit.data.images import write_image

runner = CliRunner()


@pytest.fixture(scope="module")
def clear_dir(tmp_path_factory):
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("clear")
    for i in range(5):
        img = ndimage.gaussian_filter(rng.uniform(0, 1, (48, 64, 3)), (2, 2, 0))
        write_image(folder / f"scene{i}.png", (img - img.min()) / (img.max() - img.min()))
    return folder


def _ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def test_synth_pretrain_eval_end_to_end(clear_dir, tmp_path, shared_dir_or_none):
    evalset = tmp_path / "evalset"
    _ok(
        runner.invoke(
            app,
            [
                "synth",
                "--clear",
                str(clear_dir),
                "--out",
                str(evalset),
                "--haze-preset",
                "realistic",
                "--count",
                "3",
                "--size",
                "40",
            ],
        )
    )
    assert len(list((evalset / "hazy").glob("*.png"))) == 3
    model_dir = tmp_path / "model"
    out = _ok(
        runner.invoke(
            app,
            [
                "pretrain",
                "--clear",
                str(clear_dir),
                "--backbone",
                "tiny-gunet",
                "--out",
                str(model_dir),
                "--haze-preset",
                "homogeneous+realistic",
                "--steps",
                "8",
                "--crop",
                "32",
                "--batch-size",
                "2",
                "--val-every",
                "4",
                "--val-count",
                "2",
                "--val-size",
                "32",
                "--max-side",
                "64",
                "--no-progress",
            ],
        )
    )
    assert "homogeneous" in out and "realistic" in out
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "model.json").is_file()
    report_dir = tmp_path / "report"
    args = [
        "eval",
        "--model",
        str(model_dir),
        "--hazy",
        str(evalset / "hazy"),
        "--clear",
        str(evalset / "clear"),
        "--out",
        str(report_dir),
    ]
    fade_dir = shared_dir_or_none / "metrics" / "fade" if shared_dir_or_none else None
    if fade_dir is not None and fade_dir.is_dir():
        args += ["--fade-params", str(fade_dir)]
    out = _ok(runner.invoke(app, args))
    report = json.loads((report_dir / "report.json").read_text())
    assert len(report["images"]) == 3
    expected = {"psnr", "ssim", "dark_channel", "colourfulness", "entropy", "naturalness"}
    assert expected <= set(report["mean"])
    assert ("fade" in report["mean"]) == (fade_dir is not None and fade_dir.is_dir())
    first = report["images"][0]
    assert first["delta"]["psnr"] == pytest.approx(first["after"]["psnr"] - first["before"]["psnr"])
    assert (report_dir / "contact_sheet.png").stat().st_size > 1000


def test_pretrain_resume_via_cli(clear_dir, tmp_path):
    base = [
        "pretrain",
        "--clear",
        str(clear_dir),
        "--backbone",
        "tiny-gunet",
        "--out",
        str(tmp_path / "m"),
        "--crop",
        "32",
        "--batch-size",
        "2",
        "--val-every",
        "2",
        "--ckpt-every",
        "2",
        "--val-count",
        "2",
        "--val-size",
        "32",
        "--max-side",
        "64",
        "--no-progress",
    ]
    _ok(runner.invoke(app, base + ["--steps", "2"]))
    out = _ok(runner.invoke(app, base + ["--steps", "4", "--resume"]))
    assert "best step" in out
    ck = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [h["step"] for h in ck["history"]] == [2, 4]


def test_user_errors_exit_2(clear_dir, tmp_path):
    res = runner.invoke(app, ["synth", "--clear", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    res = runner.invoke(
        app, ["pretrain", "--clear", str(clear_dir), "--backbone", "tiny-gunet", "--reweight", "x"]
    )
    assert res.exit_code == 2
    res = runner.invoke(app, ["eval", "--hazy", str(clear_dir), "--metrics", "fade,bogus"])
    assert res.exit_code == 2


@pytest.fixture()
def shared_dir_or_none():
    from tests.conftest import SHARED

    return SHARED if SHARED.is_dir() else None


def test_pretrain_recalibration_flags_reach_the_run(clear_dir, tmp_path):
    common = [
        "pretrain",
        "--clear",
        str(clear_dir),
        "--backbone",
        "tiny-gunet",
        "--crop",
        "32",
        "--batch-size",
        "2",
        "--val-every",
        "2",
        "--val-count",
        "2",
        "--val-size",
        "32",
        "--max-side",
        "64",
        "--no-progress",
        "--steps",
        "2",
        "--haze-preset",
        "outdoor",
    ]
    _ok(runner.invoke(app, common + ["--out", str(tmp_path / "start")]))
    _ok(
        runner.invoke(
            app,
            common
            + [
                "--out",
                str(tmp_path / "re"),
                "--init",
                str(tmp_path / "start"),
                "--colour-weight",
                "0.5",
                "--rotate",
                "--real-images",
                str(clear_dir),
                "--real-weight",
                "2",
            ],
        )
    )
    extra = json.loads((tmp_path / "re" / "model.json").read_text())["extra"]
    assert extra["init"] == str(tmp_path / "start")
    assert extra["colour_weight"] == 0.5 and extra["rotate"] is True
    assert extra["real_images"] == str(clear_dir) and extra["real_weight"] == 2.0
    for flag in ("--init", "--real-images"):
        res = runner.invoke(app, common + ["--out", str(tmp_path / "x"), flag, str(tmp_path / "missing")])
        assert res.exit_code == 2 and f"{flag} does not exist" in res.output
    res = runner.invoke(app, common + ["--out", str(tmp_path / "x"), "--real-images", str(clear_dir)])
    assert res.exit_code == 2 and "--real-images needs --init" in res.output
