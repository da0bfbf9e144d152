"""The network ``adapt`` starts from: which weights, which form, which candidate blocks.

Checked before any data is read or any step is trained, so a wrong --weights/--backbone pair fails in
one line (DESIGN: errors early).
"""

from __future__ import annotations

import copy
import logging

from torch import nn

from dehazekit.adapt.config import AdaptConfig
from dehazekit.catalog import (
    WEIGHTS_DEFAULT,
    WEIGHTS_RANDOM,
    WEIGHTS_SYNTHETIC,
    missing_weights_error,
    weights_source,
)

log = logging.getLogger(__name__)


def load_backbone(config: AdaptConfig, backbone: nn.Module | None = None) -> nn.Module:
    """The frozen base network in eval mode, in its deploy form (e.g. DEA-Net without DEConv)."""
    from dehazekit.backbones import create_backbone

    if backbone is not None:
        model = copy.deepcopy(backbone)  # never put LoRA into the caller's module
    elif config.weights is None:
        raise missing_weights_error(str(config.backbone))
    elif config.weights == WEIGHTS_RANDOM:
        log.warning("--weights random: adapting %s from RANDOM initial weights (tests only)", config.backbone)
        model = create_backbone(config.backbone)
    else:
        model = _load_weights(str(config.backbone), config.weights)
    if hasattr(model, "reparameterize"):
        model = model.reparameterize()
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def _load_weights(name: str, weights: str) -> nn.Module:
    """A saved model folder/file (its model.json must name ``name``) or an official checkpoint."""
    import inspect

    from dehazekit.backbones import get_spec
    from dehazekit.models import load_model
    from dehazekit.runtimes.errors import CheckpointMismatchError

    if weights == WEIGHTS_DEFAULT:
        log.warning(
            "--weights %s already carries an adaptation to real haze; adapting it again overshot on "
            "the ground-truth benchmark (O-HAZE 35 -0.5 dB at strength 0.5). --weights %s is the "
            "measured start",
            WEIGHTS_DEFAULT,
            WEIGHTS_SYNTHETIC,
        )
    source = weights_source(weights)
    try:
        return load_model(source, backbone=name)
    except CheckpointMismatchError:
        # Official training checkpoints (e.g. DEA-Net with DEConv) only fit the training form; load
        # that form, and load_backbone folds it into the deploy form LoRA is injected into.
        if "form" not in inspect.signature(get_spec(name).factory).parameters:
            raise
        log.info("%s does not fit the deploy form of %s; loading the training form", weights, name)
        return load_model(source, backbone=name, form="train")


def candidate_list(model: nn.Module, preset: str) -> list[str]:
    from dehazekit.backbones import candidate_blocks, spec_of

    if preset == "auto":
        preset = "bilalora" if "bilalora" in spec_of(model).presets else "all"
    return candidate_blocks(model, preset)
