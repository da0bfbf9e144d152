"""Torch-free facts about the registered backbones, so the CLI can check names before torch loads.

The registry (dehazekit.backbones) stays the source of the networks themselves; this table adds what a
user types and needs to read: family names that resolve to a default variant, the test-only configs
to hide from listings, and where each family's official checkpoints come from. A test keeps this
table and the registry in step (every registered name is listed here exactly once).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from dehazekit.runtimes.errors import ConfigError, ModelFileError, UnknownNameError

# --weights values that are not paths. Two models are bundled (benchmarks/default_model.md, "Two
# bundled models"): `default` is what run, export and eval use; `synthetic` is the same network before
# its real-haze recalibration, trained on synthetic haze only. adapt is measured from `synthetic`:
# adapting `default`, which already carries an adaptation to real haze, overshot on ground truth.
WEIGHTS_DEFAULT = "default"
WEIGHTS_SYNTHETIC = "synthetic"
BUNDLED_MODELS = (WEIGHTS_DEFAULT, WEIGHTS_SYNTHETIC)
WEIGHTS_RANDOM = "random"  # random initial weights: for tests and experiments only


@dataclass(frozen=True)
class Family:
    """One backbone family: the variant a bare family name resolves to, and its official releases."""

    default: str
    variants: tuple[str, ...]
    aliases: tuple[str, ...]
    checkpoints: str  # where the authors publish weights and how the files look
    test_only: tuple[str, ...] = ()


# Default variant = the smallest released one: it adapts in reasonable time on a CPU and on edge GPUs.
FAMILIES: dict[str, Family] = {
    "convir": Family(
        "convir-s",
        ("convir-s", "convir-b", "convir-l"),
        ("convir",),
        "github.com/c-yn/ConvIR README (Dehazing/ITS and OTS models, S/B/L): .pkl files "
        "holding {'model': state_dict}",
        ("tiny-convir",),
    ),
    "dea": Family(
        "dea",
        ("dea",),
        ("dea-net", "deanet"),
        "github.com/cecret3350/DEA-Net, trained_models/{ITS,OTS,HAZE4K}/*.pth (deploy form, "
        "plain state_dict; training checkpoints with DEConv load too)",
        ("tiny-dea",),
    ),
    "gunet": Family(
        "gunet-t",
        ("gunet-t", "gunet-s"),
        ("gunet",),
        "github.com/IDKiro/gUNet README (saved models per dataset, gunet_t/gunet_s .pth: "
        "{'state_dict': ...} with 'module.' prefixes)",
        ("tiny-gunet",),
    ),
    "dehazeformer": Family(
        "dehazeformer-t",
        ("dehazeformer-t", "dehazeformer-s"),
        ("dehazeformer",),
        "github.com/IDKiro/DehazeFormer README (saved models per dataset, "
        "dehazeformer-t/-s .pth: {'state_dict': ...} with 'module.' prefixes)",
        ("tiny-dehazeformer",),
    ),
    "msbdn": Family(
        "msbdn",
        ("msbdn",),
        ("msbdn-dff",),
        "github.com/BookerDeWitt/MSBDN-DFF README: model.pkl, a whole pickled module (read "
        "without running its code)",
        ("tiny-msbdn",),
    ),
    "dehamer": Family(
        "dehamer",
        ("dehamer",),
        (),
        "github.com/Li-Chongyi/Dehamer README (per-dataset .pt checkpoints of UNet_emb)",
        ("tiny-dehamer",),
    ),
}


def user_backbones() -> list[str]:
    """Names shown to users (listings, errors): every variant, no test-only configs."""
    return sorted(v for fam in FAMILIES.values() for v in fam.variants)


def test_backbones() -> list[str]:
    return sorted(t for fam in FAMILIES.values() for t in fam.test_only)


def family_of(name: str) -> Family | None:
    for fam in FAMILIES.values():
        if name in fam.variants or name in fam.test_only or name in fam.aliases:
            return fam
    return None


def _aliases() -> dict[str, str]:
    return {alias: fam.default for fam in FAMILIES.values() for alias in fam.aliases}


def resolve_backbone(name: str, registered: list[str] | tuple[str, ...] = ()) -> str:
    """A registered backbone name for ``name``: variants and test configs as given, a family name
    ('convir', 'dea-net', 'gunet', ...) as its default variant. Unknown names get close matches among
    the user-facing names and ``registered`` (backbones registered by user code, e.g. plugins)."""
    key = str(name).strip().lower()
    if name in registered:
        return name
    if key in user_backbones() or key in test_backbones():
        return key
    aliases = _aliases()
    if key in aliases:
        return aliases[key]
    choices = sorted({*user_backbones(), *registered}) + sorted(aliases)
    close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `dehazekit backbones` to list them"
    raise UnknownNameError.build(f"unknown backbone {name!r}", expected=", ".join(user_backbones()), fix=hint)


def bundled_model_dir(name: str = WEIGHTS_DEFAULT) -> Path:
    """Folder of a model shipped inside the package (dehazekit/assets/NAME/); no torch."""
    from importlib.resources import files

    if name not in BUNDLED_MODELS:
        raise UnknownNameError.build(f"no bundled model {name!r}", expected=", ".join(BUNDLED_MODELS))
    return Path(str(files("dehazekit"))) / "assets" / name


def weights_source(weights: str | None) -> Path | None:
    """The file or folder --weights reads: a bundled model's folder, the path given, or None (random)."""
    if weights is None or weights == WEIGHTS_RANDOM:
        return None
    return bundled_model_dir(weights) if weights in BUNDLED_MODELS else Path(weights)


def bundled_model_backbone(name: str = WEIGHTS_DEFAULT) -> str | None:
    """Backbone of a bundled model, read from its model.json (no torch), or None when it is missing."""
    import json

    try:
        return str(json.loads((bundled_model_dir(name) / "model.json").read_text())["backbone"])
    except (OSError, ValueError, KeyError):
        return None


def check_bundled_weights(name: str, backbone: str) -> None:
    """Fail before any data or training when --weights NAME (a bundled model) does not fit --backbone."""
    bundled = bundled_model_backbone(name)
    if bundled is None:
        raise ModelFileError.build(
            f"the bundled {name} model is not installed",
            got=str(bundled_model_dir(name)),
            fix="pass --weights PATH, or reinstall dehazekit with its assets",
        )
    if bundled != backbone:
        raise ConfigError.build(
            f"--weights {name} is the bundled {bundled} model; it does not fit --backbone {backbone}",
            got=backbone,
            expected=bundled,
            fix=f"use --backbone {bundled}, or pass --weights PATH for {backbone}",
        )


def missing_weights_error(backbone: str) -> ConfigError:
    """The error for an adaptation without --weights: name every way to get a starting model."""
    fam = family_of(backbone)
    official = f"official {backbone} checkpoints: {fam.checkpoints}" if fam else "an official checkpoint"
    bundled = bundled_model_backbone(WEIGHTS_SYNTHETIC) or "gunet-t"
    return ConfigError.build(
        f"no --weights for {backbone}: adaptation starts from a trained dehazing model",
        got="no --weights",
        expected=f"--weights PATH | {' | '.join(BUNDLED_MODELS)} | {WEIGHTS_RANDOM}",
        fix=f"pass --weights PATH to a checkpoint ({official}); or --weights {WEIGHTS_SYNTHETIC} with "
        f"--backbone {bundled} (the bundled model trained on synthetic haze); or train one with "
        f"`dehazekit pretrain --backbone {backbone}`; --weights {WEIGHTS_RANDOM} starts from random "
        "weights (tests only)",
    )
