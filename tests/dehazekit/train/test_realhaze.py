"""pretrain --real-images: the offline objective on real hazy crops, labelled by the --init model."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from dehazekit.data.images import write_image
from dehazekit.runtimes.errors import ConfigError
from dehazekit.train.pretrain import pretrain
from dehazekit.train.realhaze import RealHazeTerm
from tests.dehazekit.train.test_pretrain import _cfg as pretrain_cfg


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """clear/ and real/ image folders and an init/ tiny-gunet model."""
    from scipy import ndimage

    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    root = tmp_path_factory.mktemp("realhaze")
    rng = np.random.default_rng(0)
    for kind, count in (("clear", 6), ("real", 3)):
        for i in range(count):
            img = ndimage.gaussian_filter(rng.uniform(0, 1, (48, 56, 3)), (2, 2, 0))
            img = (img - img.min()) / (img.max() - img.min())
            write_image(root / kind / f"im{i}.png", 0.6 * img + 0.35 if kind == "real" else img)
    write_image(root / "real" / "tiny.png", np.full((20, 20, 3), 0.8))  # smaller than the crop
    torch.manual_seed(3)
    save_model(create_backbone("tiny-gunet"), root / "init", extra={"trained_by": "test"})
    return root


def _cfg(root, out, **kw):
    """test_pretrain's tiny run, plus the real-haze term (2 steps, lr 1e-3)."""
    settings = dict(
        steps=2, lr=1e-3, val_every=2, ckpt_every=2, init=root / "init", real_images=root / "real"
    )
    return pretrain_cfg(root / "clear", out, **{**settings, **kw})


def _net():
    from dehazekit.backbones import create_backbone

    return create_backbone("tiny-gunet")


def test_crops_depend_on_seed_and_step_only_and_small_photos_are_left_out(folders, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        term = RealHazeTerm(_cfg(folders, tmp_path), _net())
    assert len(term.images) == 3 and "1 of 4 photos" in caplog.text
    first, again = term.batch(5, 4), RealHazeTerm(_cfg(folders, tmp_path), _net()).batch(5, 4)
    assert first.shape == (4, 3, 32, 32) and 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, again)  # a resumed run sees the crops an uninterrupted one saw
    assert not torch.equal(first, term.batch(6, 4))


def test_label_is_the_init_model_not_the_weights_being_trained(folders, tmp_path):
    from dehazekit.models import load_model
    from dehazekit.objectives.rehaze import RehazeObjective

    trained = load_model(folders / "init")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))  # as if pretraining had moved it (or a resume restored it)
    term = RealHazeTerm(_cfg(folders, tmp_path), trained)
    hazy = term.batch(0, 2)

    def loss_with(labeller):
        torch.manual_seed(11)  # the same random transmission for every variant
        objective = RehazeObjective(teacher="base")
        objective.attach(trained, teacher=labeller)
        return float(objective(hazy, trained(hazy)))

    torch.manual_seed(11)
    got = float(term.loss(hazy).detach())
    assert got == pytest.approx(loss_with(load_model(folders / "init")), rel=1e-5)
    assert got != pytest.approx(loss_with(None), rel=1e-3)  # labelled by the moved weights: differs


def test_real_term_changes_training_and_is_weighted(folders, tmp_path):
    plain = pretrain(_cfg(folders, tmp_path / "plain", real_images=None))
    mixed = pretrain(_cfg(folders, tmp_path / "mixed"))
    heavy = pretrain(_cfg(folders, tmp_path / "heavy", real_weight=10.0))
    losses = [r.history[-1]["loss"] for r in (plain, mixed, heavy)]
    assert losses[0] < losses[1] < losses[2]  # the reported loss includes the weighted real term
    config = (tmp_path / "mixed" / "config.json").read_text()
    assert '"real_images"' in config and '"real_weight": 1.0' in config


@pytest.mark.parametrize(
    "change",
    [
        {"init": None},
        {"reweight": "bild"},
        {"real_weight": 0.0},
    ],
)
def test_bad_real_haze_settings_raise(folders, tmp_path, change):
    with pytest.raises(ConfigError):
        _cfg(folders, tmp_path, **change)


def test_a_folder_with_no_photo_as_large_as_the_crop_raises(folders, tmp_path):
    with pytest.raises(ConfigError, match="as large as --crop"):
        RealHazeTerm(_cfg(folders, tmp_path, crop=60), _net())


def test_resume_with_the_real_term_reproduces_an_uninterrupted_run(folders, tmp_path):
    pretrain(_cfg(folders, tmp_path / "full", steps=4))
    pretrain(_cfg(folders, tmp_path / "split", steps=4, stop_after=2))
    pretrain(_cfg(folders, tmp_path / "split", steps=4, resume=True))
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
