"""The two bundled models: `default` (what run/export/eval use) and `synthetic` (where adapt starts)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from dehazekit.catalog import (
    BUNDLED_MODELS,
    WEIGHTS_DEFAULT,
    WEIGHTS_SYNTHETIC,
    bundled_model_backbone,
    bundled_model_dir,
    check_bundled_weights,
)
from dehazekit.models import MODEL_WEIGHTS, default_model_path, load_model
from dehazekit.runtimes.errors import ConfigError, UnknownNameError


def _installed(name: str) -> None:
    if not (bundled_model_dir(name) / MODEL_WEIGHTS).is_file():
        pytest.skip(f"no bundled {name} model in this checkout")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_names_resolve_to_their_own_folders() -> None:
    assert default_model_path() == bundled_model_dir(WEIGHTS_DEFAULT)
    assert bundled_model_dir(WEIGHTS_SYNTHETIC).name == "synthetic"
    assert bundled_model_dir(WEIGHTS_SYNTHETIC) != bundled_model_dir(WEIGHTS_DEFAULT)
    with pytest.raises(UnknownNameError, match="no bundled model 'recal'"):
        bundled_model_dir("recal")


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_each_bundled_model_loads_and_names_its_backbone(name: str) -> None:
    _installed(name)
    model = load_model(bundled_model_dir(name))
    assert model.backbone_name == bundled_model_backbone(name) == "gunet-t"
    assert model.dehazekit_meta.extra.get("trained_by") == "dehazekit pretrain"


def test_the_two_models_differ_and_default_is_the_recalibrated_one() -> None:
    for name in BUNDLED_MODELS:
        _installed(name)
    default, synthetic = load_model(None), load_model(bundled_model_dir(WEIGHTS_SYNTHETIC))
    assert not _same_weights(default, synthetic)
    # the default was trained from the synthetic model with unlabeled real haze; the synthetic one saw none
    assert default.dehazekit_meta.extra.get("real_images")
    assert "real_images" not in synthetic.dehazekit_meta.extra


def test_a_bundled_model_that_does_not_fit_the_backbone_is_refused_early() -> None:
    _installed(WEIGHTS_SYNTHETIC)
    with pytest.raises(ConfigError, match="--weights synthetic is the bundled gunet-t model"):
        check_bundled_weights(WEIGHTS_SYNTHETIC, "dea")
    check_bundled_weights(WEIGHTS_SYNTHETIC, "gunet-t")


def test_adapt_starts_from_the_model_it_names(caplog: pytest.LogCaptureFixture) -> None:
    from dehazekit.adapt import AdaptConfig
    from dehazekit.adapt.backbone import load_backbone

    for name in BUNDLED_MODELS:
        _installed(name)
    with caplog.at_level(logging.WARNING):
        synthetic = load_backbone(AdaptConfig(backbone="gunet-t", weights=WEIGHTS_SYNTHETIC))
    assert _same_weights(synthetic, load_model(bundled_model_dir(WEIGHTS_SYNTHETIC)))
    assert "overshot" not in caplog.text
    with caplog.at_level(logging.WARNING):
        default = load_backbone(AdaptConfig(backbone="gunet-t", weights=WEIGHTS_DEFAULT))
    assert _same_weights(default, load_model(None))
    assert "--weights synthetic is the measured start" in caplog.text


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_adapt_never_writes_over_the_bundled_model_it_starts_from(name: str) -> None:
    from typer.testing import CliRunner

    from dehazekit.cli.main import app

    _installed(name)
    folder = bundled_model_dir(name)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    images = Path(__file__).resolve().parents[2] / "samples" / "images"
    args = ["adapt", "--images", str(images), "--backbone", "gunet-t", "--weights", name]
    result = CliRunner().invoke(app, [*args, "--objective", "offline", "--out", str(folder)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
