"""Unlabeled real haze inside supervised pretraining: the ``offline`` objective on real hazy crops,
added to the synthetic L1 (``pretrain --real-images DIR --real-weight W``, with ``--init``).

Why a mix: the bundled, synthetic-only model is too dark on real haze (O-HAZE luma 86.5 vs GT 102)
but not on synthetic haze (130 vs 116), so no loss on synthetic pairs sees the darkening, and
fine-tunes on synthetic haze alone never moved real brightness (benchmarks/default_model.md).
Adapting the model on unlabeled real photos with the ``offline`` objective does move it (O-HAZE +0.84
dB, luma 93.7), but alone it lost 0.35 dB on synthetic haze. Keeping the synthetic L1 in the same
steps is the replay that holds the synthetic skill while the real term fixes real brightness: at
weight 0.3 it passed the default-model rule (O-HAZE +0.83 dB, synthetic mean +0.15 dB). It is not
bundled, because adapting that model with ``offline`` overshoots (benchmarks/default_model.md).

The real term is dehazekit.objectives.rehaze with the base label: the label is the output of the
``--init`` model (loaded again, frozen), never of the weights being trained, so a resumed run keeps
the same label.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from dehazekit.runtimes.errors import ConfigError

log = logging.getLogger(__name__)


class RealHazeTerm:
    """Random crops of real hazy photos and the rehaze loss of the model being trained on them."""

    def __init__(self, cfg: Any, model: nn.Module) -> None:
        """``cfg``: a PretrainConfig (real_images, init, crop, max_side, seed, real_weight); ``model``:
        the network being trained."""
        from dehazekit.data.images import list_images, read_rgb_uint8
        from dehazekit.models import load_model
        from dehazekit.objectives.rehaze import RehazeObjective

        folder, crop, max_side = Path(cfg.real_images), cfg.crop, cfg.max_side
        files = list_images(folder, "real hazy image folder")
        images = [read_rgb_uint8(p, max_side) for p in files]
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if len(self.images) < len(images):
            log.warning(
                "real-haze term: %d of %d photos have a short side under --crop %d px; left out",
                len(images) - len(self.images),
                len(images),
                crop,
            )
        if not self.images:
            raise ConfigError.build(
                "no real hazy image is as large as --crop",
                got=f"{len(images)} image(s) in {folder}",
                expected=f"a short side >= {crop} px after --max-side {max_side}",
                fix="lower --crop",
            )
        self.crop, self.seed, self.weight = crop, cfg.seed, float(cfg.real_weight)
        self.objective = RehazeObjective(teacher="base")
        self.objective.attach(model, teacher=load_model(cfg.init))  # the objective moves it to the data
        log.info("real-haze term: %d photos from %s, label from %s", len(self.images), folder, cfg.init)

    def batch(self, step: int, size: int) -> Tensor:
        """(size, 3, crop, crop) in [0, 1]; crops depend on (seed, step) only: a resumed run repeats them."""
        rng = np.random.default_rng((self.seed, step))
        crops = []
        for i in rng.integers(len(self.images), size=size):
            image = self.images[i]
            top = rng.integers(image.shape[0] - self.crop + 1)
            left = rng.integers(image.shape[1] - self.crop + 1)
            crops.append(image[top : top + self.crop, left : left + self.crop])
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255

    def loss(self, hazy: Tensor) -> Tensor:
        """The rehaze loss of the trained network on real hazy crops, labelled by the ``--init`` model."""
        model = self.objective.network
        return self.objective(hazy, model(hazy))

    def weighted_loss(self, hazy: Tensor) -> Callable[[], Tensor]:
        """``real_weight * loss(hazy)``, computed when called: the extra term of one pretraining step."""
        return lambda: self.weight * self.loss(hazy)
