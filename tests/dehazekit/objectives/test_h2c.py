"""H2C objective: the issue's formula, single normalisation, clamping, frozen CLIP, prompt handling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dehazekit.objectives import create_objective
from dehazekit.objectives.h2c import PROMPT_PRESETS, H2CObjective, make_h2c, resolve_prompts
from dehazekit.runtimes.errors import ConfigError, UnknownNameError
from tests.dehazekit.objectives.conftest import TINY_CLIP


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def test_loss_matches_hand_computation(tiny_h2c: H2CObjective) -> None:
    import open_clip

    torch.manual_seed(1)
    hazy = torch.rand(3, 3, 48, 40)
    out = torch.rand(3, 3, 48, 40)
    clip = tiny_h2c.clip
    tok = open_clip.get_tokenizer("tiny_clip")
    t_haze = _unit(clip.encode_text(tok(["a photo with haze"])))
    t_clear = _unit(clip.encode_text(tok(["a clear photo"])))
    d_t = _unit(_unit(t_clear - t_haze))
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)

    def encode(img):
        img = F.interpolate(img, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        return _unit(clip.encode_image((img - mean) / std))

    d_v = _unit(encode(out) - encode(hazy))
    expected = (1 - (d_v * d_t).sum(-1)).mean()
    got = tiny_h2c(hazy, out)
    assert torch.allclose(got, expected, atol=1e-5)
    assert 0.0 <= got.item() <= 2.0


def test_clip_input_is_normalised_exactly_once(tiny_h2c: H2CObjective) -> None:
    seen = []
    handle = tiny_h2c.clip.visual.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    try:
        image = torch.full((1, 3, 32, 32), 0.5)
        tiny_h2c(image, image * 0.9)
    finally:
        handle.remove()
    mean = tiny_h2c.mean.clone().view(1, 3, 1, 1)
    std = tiny_h2c.std.clone().view(1, 3, 1, 1)
    once = (0.5 - mean) / std
    twice = (once - mean) / std
    assert len(seen) == 2  # one encoder call for the input, one for the output
    assert torch.allclose(seen[0], once.expand_as(seen[0]), atol=1e-6)
    assert not torch.allclose(seen[0], twice.expand_as(seen[0]), atol=1e-2)


def test_output_is_clamped_before_clip(tiny_h2c: H2CObjective) -> None:
    torch.manual_seed(2)
    hazy = torch.rand(2, 3, 32, 32)
    raw = (torch.randn(2, 3, 32, 32) * 0.8 + 0.5).requires_grad_()
    loss = tiny_h2c(hazy, raw)
    loss.backward()
    assert torch.allclose(loss, tiny_h2c(hazy, raw.detach().clamp(0, 1)), atol=1e-6)
    outside = (raw.detach() < 0) | (raw.detach() > 1)
    assert outside.any()
    assert torch.all(raw.grad[outside] == 0)
    assert raw.grad[~outside].abs().sum() > 0


def test_clip_frozen_and_stays_eval(tiny_h2c: H2CObjective) -> None:
    assert all(not p.requires_grad for p in tiny_h2c.clip.parameters())
    tiny_h2c.train()
    assert not tiny_h2c.clip.training
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    tiny_h2c(torch.rand(1, 3, 32, 32), out).backward()
    assert all(p.grad is None for p in tiny_h2c.clip.parameters())
    assert next(tiny_h2c.clip.parameters()).dtype == torch.float32


def test_text_direction_averages_pairs() -> None:
    pairs = PROMPT_PRESETS["night"]
    obj = make_h2c(clip=str(TINY_CLIP), pretrained=None, prompts="night")
    import open_clip

    tok = open_clip.get_tokenizer("tiny_clip")
    dirs = []
    for hazy, clear in pairs:
        feats = _unit(obj.clip.encode_text(tok([hazy, clear])))
        dirs.append(_unit(feats[1] - feats[0]))
    expected = _unit(torch.stack(dirs).mean(0))
    assert torch.allclose(obj.text_direction, expected, atol=1e-5)
    assert obj.prompts == pairs


def test_prompt_validation() -> None:
    assert resolve_prompts(None) == (("a photo with haze", "a clear photo"),)
    assert resolve_prompts([["a", "b"], ("c", "d")]) == (("a", "b"), ("c", "d"))
    with pytest.raises(UnknownNameError):
        resolve_prompts("nite")
    with pytest.raises(ConfigError):
        resolve_prompts([("only one",)])
    with pytest.raises(ConfigError):
        resolve_prompts([])


def test_registry_builds_h2c_and_mix() -> None:
    from dehazekit.objectives.dcp import DCPObjective

    mix = create_objective("h2c+dcp", {"h2c": {"clip": str(TINY_CLIP), "pretrained": None}})
    h2c, dcp = mix.terms
    assert isinstance(h2c, H2CObjective) and isinstance(dcp, DCPObjective)
    hazy, out = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert torch.allclose(mix(hazy, out), h2c(hazy, out) + dcp(hazy, out), atol=1e-6)


@pytest.mark.clip_weights
def test_pretrained_clip_prefers_dehazed_over_hazier(shared_data) -> None:
    """Real CLIP weights (DEHAZEKIT_CLIP_WEIGHTS): removing haze scores better than adding more."""
    import os

    import numpy as np
    from PIL import Image

    obj = make_h2c(
        clip=os.environ.get("DEHAZEKIT_CLIP_MODEL", "ViT-B-32"), weights=os.environ["DEHAZEKIT_CLIP_WEIGHTS"]
    )
    files = sorted((shared_data / "clear" / "kodak24").glob("*"))[:4]
    clear = torch.stack(
        [
            torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((224, 224))).copy())
            .permute(2, 0, 1)
            .float()
            / 255
            for f in files
        ]
    )
    hazy = 0.6 * clear + 0.4 * 0.9
    hazier = 0.3 * clear + 0.7 * 0.9
    assert obj(hazy, clear) < obj(hazy, hazier)
