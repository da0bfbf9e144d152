"""Pretraining loop: runs, keeps the best model, resumes to the same weights; BILD's parts are honest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dehazekit.data.images import write_image
from dehazekit.runtimes.errors import ConfigError
from dehazekit.train.pretrain import PretrainConfig, per_patch_loss, pretrain


@pytest.fixture(scope="module")
def clear_dir(tmp_path_factory):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("clear")
    for i in range(6):
        img = ndimage.gaussian_filter(rng.uniform(0, 1, (48, 56, 3)), (2, 2, 0))
        write_image(folder / f"im{i}.png", (img - img.min()) / (img.max() - img.min()))
    return folder


def _cfg(clear_dir, out, **kw):
    base = dict(
        clear=clear_dir,
        backbone="tiny-gunet",
        out=out,
        steps=6,
        crop=32,
        batch_size=2,
        lr=2e-3,
        val_every=3,
        ckpt_every=3,
        val_count=2,
        val_size=32,
        max_side=64,
        progress=False,
        val_fraction=0.3,
    )
    base.update(kw)
    return PretrainConfig(**base)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resume_reproduces_an_uninterrupted_run(clear_dir, tmp_path):
    full = pretrain(_cfg(clear_dir, tmp_path / "full"))
    pretrain(_cfg(clear_dir, tmp_path / "split", stop_after=3))
    resumed = pretrain(_cfg(clear_dir, tmp_path / "split", steps=6, resume=True))
    assert full.step == resumed.step == 6
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    hist = json.loads((tmp_path / "full" / "history.json").read_text())
    assert [h["step"] for h in hist["history"]] == [3, 6]
    meta = json.loads((tmp_path / "full" / "model.json").read_text())
    assert meta["backbone"] == "tiny-gunet" and meta["extra"]["step"] == full.best["step"]
    assert set(_weights(tmp_path / "full")) == set(a)


def test_resume_refuses_other_backbone(clear_dir, tmp_path):
    pretrain(_cfg(clear_dir, tmp_path / "r", steps=3))
    with pytest.raises(ConfigError):
        pretrain(_cfg(clear_dir, tmp_path / "r", steps=6, resume=True, backbone="tiny-msbdn"))


def test_bad_config_raises(clear_dir, tmp_path):
    with pytest.raises(ConfigError):
        _cfg(clear_dir, tmp_path, reweight="magic")
    with pytest.raises(ConfigError):
        _cfg(clear_dir, tmp_path, steps=0)


def test_per_patch_loss_shapes_and_ssim_term():
    x, y = torch.rand(3, 3, 24, 24), torch.rand(3, 3, 24, 24)
    l1 = per_patch_loss(x, y, 0.0)
    both = per_patch_loss(x, y, 0.5)
    assert l1.shape == (3,) and torch.all(both > l1)
    assert torch.all(per_patch_loss(y, y, 0.5) < 1e-6)


def test_colour_term_charges_a_global_shift_more_than_zero_mean_noise_of_equal_l1():
    y = torch.full((1, 3, 32, 32), 0.5)
    shifted = y + 0.1
    sign = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1
    noisy = y + 0.1 * sign.float()
    assert torch.allclose(per_patch_loss(shifted, y, 0.0), per_patch_loss(noisy, y, 0.0))
    assert per_patch_loss(shifted, y, 0.0, 1.0) > per_patch_loss(noisy, y, 0.0, 1.0) + 0.09
    assert torch.allclose(per_patch_loss(noisy, y, 0.0, 1.0), per_patch_loss(noisy, y, 0.0), atol=1e-6)


def test_init_starts_from_the_given_model_and_checks_the_backbone(clear_dir, tmp_path):
    from dehazekit.backbones import create_backbone
    from dehazekit.data.datasets import split_holdout
    from dehazekit.data.images import list_images
    from dehazekit.models import save_model
    from dehazekit.train.pretrain import _val_tensors, evaluate_sets

    torch.manual_seed(7)
    start = create_backbone("tiny-gunet")
    save_model(start, tmp_path / "start", extra={"trained_by": "test"})
    cfg = _cfg(clear_dir, tmp_path / "run", init=tmp_path / "start", steps=1, lr=1e-9, val_every=1)
    result = pretrain(cfg)
    # One step at a negligible lr: validation scores are the start model's, not a fresh init's.
    sets = _val_tensors(cfg, split_holdout(list_images(clear_dir), cfg.val_fraction)[1])
    start.eval()
    expected = evaluate_sets(start, sets)
    got = result.best["val"]
    for preset in expected:
        assert got[preset]["psnr"] == pytest.approx(expected[preset]["psnr"], abs=0.05)
    with pytest.raises(ConfigError):
        pretrain(_cfg(clear_dir, tmp_path / "bad", init=tmp_path / "start", backbone="gunet-t", steps=1))


def test_bild_reweighting_runs_and_resumes(clear_dir, tmp_path):
    full = pretrain(_cfg(clear_dir, tmp_path / "full", steps=4, reweight="bild"))
    pretrain(_cfg(clear_dir, tmp_path / "split", steps=4, stop_after=2, reweight="bild"))
    resumed = pretrain(_cfg(clear_dir, tmp_path / "split", steps=4, reweight="bild", resume=True))
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert full.step == resumed.step == 4 and b["reweighter"] is not None
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    for k in a["reweighter"]["net"]:
        torch.testing.assert_close(a["reweighter"]["net"][k], b["reweighter"]["net"][k], rtol=1e-5, atol=1e-6)


def test_progress_by_callback_and_by_logging(clear_dir, tmp_path, caplog):
    events = []
    pretrain(_cfg(clear_dir, tmp_path / "cb", steps=3), progress=events.append)
    assert [e["step"] for e in events] == [1, 2, 3] and all(e["total"] == 3 for e in events)
    assert all(e["step_s"] > 0 and np.isfinite(e["loss"]) for e in events)
    with caplog.at_level("INFO", logger="dehazekit.progress"):  # the default: lines through logging
        pretrain(_cfg(clear_dir, tmp_path / "log", steps=3, progress=True))
    assert "pretrain 1/3" in caplog.text and "pretrain 3/3" in caplog.text and "ETA" in caplog.text


def test_core_never_imports_the_cli():
    """Layers: dehazekit core (here train/, adapt/) reports progress by callback, never through the CLI,
    not even inside a function."""
    import ast
    from pathlib import Path

    import dehazekit

    root = Path(dehazekit.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "cli" in path.relative_to(root).parts or path.name == "__main__.py":  # the CLI and its entry point
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("dehazekit.cli")]
    assert offenders == []
