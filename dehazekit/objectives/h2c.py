"""H2C (haze-to-clear) objective: push the CLIP image-feature change of a dehazing step towards the
CLIP text direction from "a photo with haze" to "a clear photo".

    dT = n( mean_pairs n( n(T_clear) - n(T_haze) ) )
    dV = n( n(E(P(clamp(out, 0, 1)))) - n(E(P(hazy))) )
    L  = mean_batch ( 1 - cos(dV, dT) )

n is L2 normalisation, E the frozen CLIP image encoder, and P the CLIP preprocessing applied to a
[0, 1] image: a differentiable bilinear resize to the model's input size, then the model's mean/std
normalisation, exactly once. Two bugs of the public reference code are avoided on purpose (tests pin
them): normalising the CLIP input twice, and feeding the unclamped network output to CLIP.
Text features are computed once at construction and kept as a buffer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dehazekit.objectives.base import register_objective
from dehazekit.objectives.clip_model import (
    DEFAULT_CLIP,
    DEFAULT_PRETRAINED,
    image_size_of,
    load_clip,
    mean_std_of,
)
from dehazekit.runtimes.errors import ConfigError, UnknownNameError

PromptPair = tuple[str, str]  # (hazy prompt, clear prompt)

PROMPT_PRESETS: dict[str, tuple[PromptPair, ...]] = {
    "default": (("a photo with haze", "a clear photo"),),
    "day": (
        ("a photo with haze", "a clear photo"),
        ("a hazy photo", "a clear photo"),
        ("a foggy landscape", "a clear landscape"),
    ),
    "night": (
        ("a night photo with haze", "a clear night photo"),
        ("a foggy street at night", "a clear street at night"),
        ("a hazy night scene with glowing lights", "a clear night scene with sharp lights"),
    ),
}


def resolve_prompts(prompts: Sequence[Sequence[str]] | str | None) -> tuple[PromptPair, ...]:
    """A preset name, a list of (hazy, clear) pairs, or None (default pair)."""
    if prompts is None:
        return PROMPT_PRESETS["default"]
    if isinstance(prompts, str):
        if prompts not in PROMPT_PRESETS:
            raise UnknownNameError.build(
                f"unknown prompt preset {prompts!r}", expected=sorted(PROMPT_PRESETS)
            )
        return PROMPT_PRESETS[prompts]
    pairs = tuple(tuple(p) for p in prompts)
    if not pairs or any(len(p) != 2 or not all(isinstance(s, str) and s.strip() for s in p) for p in pairs):
        raise ConfigError.build(
            "bad H2C prompts",
            got=prompts,
            expected="a preset name or a list of (hazy prompt, clear prompt) pairs",
        )
    return pairs  # type: ignore[return-value]


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)


class H2CObjective(nn.Module):
    """forward(hazy, out) -> scalar; hazy, out: (B, 3, H, W) float32, hazy in [0, 1].

    The CLIP model is frozen (eval, no grad to its parameters); gradients reach ``out`` only.
    """

    def __init__(self, clip_model: nn.Module, tokenizer, prompts: Sequence[PromptPair]) -> None:
        super().__init__()
        self.clip = clip_model.eval()
        for param in self.clip.parameters():
            param.requires_grad_(False)
        self.prompts = tuple(tuple(p) for p in prompts)
        self.image_size = image_size_of(clip_model)
        mean, std = mean_std_of(clip_model)
        self.register_buffer("mean", torch.tensor(mean).float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("text_direction", self._text_direction(tokenizer), persistent=False)
        self._memo: dict[int, list] = {}  # id -> [input batch, its version, its features or None]

    @torch.no_grad()
    def _text_direction(self, tokenizer) -> Tensor:
        hazy = _unit(self.clip.encode_text(tokenizer([h for h, _ in self.prompts])).float())
        clear = _unit(self.clip.encode_text(tokenizer([c for _, c in self.prompts])).float())
        # each pair gives a unit direction; their average is renormalised so pairs weigh equally
        return _unit(_unit(clear - hazy).mean(dim=0))

    def train(self, mode: bool = True) -> "H2CObjective":
        super().train(mode)
        self.clip.eval()  # CLIP stays in eval whatever the caller does (no dropout, fixed norms)
        return self

    def preprocess(self, image: Tensor) -> Tensor:
        """[0, 1] image -> CLIP input: resize to the model size, then mean/std (exactly once)."""
        if tuple(image.shape[-2:]) != self.image_size:
            image = F.interpolate(
                image, size=self.image_size, mode="bilinear", align_corners=False, antialias=True
            )
        return (image - self.mean) / self.std

    def image_features(self, image: Tensor) -> Tensor:
        return _unit(self.clip.encode_image(self.preprocess(image)).float())

    def remember_inputs(self, batches: Sequence[Tensor]) -> None:
        """Embed each of these input batches once (a fixed crop set): later calls on the very same,
        unmodified tensor reuse its features. The frozen CLIP gives the same numbers every time."""
        self._memo = {id(b): [b, b._version, None] for b in batches}

    def input_features(self, hazy: Tensor) -> Tensor:
        entry = self._memo.get(id(hazy))
        if entry is not None and entry[0] is hazy and entry[1] == hazy._version and entry[2] is not None:
            return entry[2]
        with torch.no_grad():  # the input's features carry no gradient to anything we train
            feat = self.image_features(hazy.clamp(0.0, 1.0))
        if entry is not None and entry[0] is hazy and entry[1] == hazy._version:
            entry[2] = feat
        return feat

    def forward(self, hazy: Tensor, out: Tensor) -> Tensor:
        feat_in = self.input_features(hazy)
        feat_out = self.image_features(out.clamp(0.0, 1.0))
        direction = _unit(feat_out - feat_in)
        cos = (direction * self.text_direction.to(direction)).sum(dim=-1)
        return (1.0 - cos).mean()


@register_objective(
    "h2c",
    options={
        "clip": "clip",
        "pretrained": "clip_pretrained",
        "weights": "clip_weights",
        "prompts": "prompts",
    },
)
def make_h2c(
    clip: str = DEFAULT_CLIP,
    pretrained: str | None = DEFAULT_PRETRAINED,
    weights: str | Path | None = None,
    prompts: Sequence[Sequence[str]] | str | None = None,
) -> H2CObjective:
    """Factory used by ``create_objective('h2c', {'h2c': {...}})``."""
    pairs = resolve_prompts(prompts)
    model, tokenizer = load_clip(clip, pretrained, weights)
    return H2CObjective(model, tokenizer, pairs)
