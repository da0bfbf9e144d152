"""ConvIR dehazing network (c-yn/ConvIR, MIT; TPAMI 2024), registered as convir-s/-b/-l and tiny-convir.

A three-level U-Net in the MIMO-UNet style: the input is also fed at 1/2 and 1/4 resolution through
shallow convolutional modules (SCM) fused into the encoder (FAM); every stage is a stack of residual
blocks whose last one carries the multi-scale pooling / dynamic-filter layer. The decoder predicts an
image residual at each scale. Our state_dict equals the authors' (ITS and OTS checkpoints share it).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones.convir_layers import BasicConv, ResBlock
from dehazekit.backbones.registry import register_backbone
from dehazekit.runtimes.errors import ConfigError

_SOURCE = "c-yn/ConvIR@05dcbffa (Dehazing/ITS and OTS)"


class Stage(nn.Module):
    """``num_res`` residual blocks; the last one holds the DeepPoolLayer (official EBlock/DBlock)."""

    def __init__(
        self, dim: int, num_res: int, pool_sizes: tuple[int, ...], dilations: tuple[int, ...], groups: int
    ) -> None:
        super().__init__()
        blocks = [
            ResBlock(dim, pool_sizes, dilations, use_filter=(i == num_res - 1), groups=groups)
            for i in range(num_res)
        ]
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SCM(nn.Module):
    """Shallow features of a downscaled input image, instance-normalised before fusion."""

    def __init__(self, out_ch: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3, out_ch // 4, 3, relu=True),
            BasicConv(out_ch // 4, out_ch // 2, 1, relu=True),
            BasicConv(out_ch // 2, out_ch // 2, 3, relu=True),
            BasicConv(out_ch // 2, out_ch, 1, relu=False),
            nn.InstanceNorm2d(out_ch, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class FAM(nn.Module):
    """Fuses encoder features with SCM features by a 3x3 conv over their concatenation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.merge = BasicConv(dim * 2, dim, 3, relu=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([x, skip], dim=1))


def _validate(
    num_res: int, base_channel: int, pool_sizes: Sequence[int], dilations: Sequence[int], groups: int
) -> None:
    if num_res < 1:
        raise ConfigError.build("ConvIR num_res must be >= 1", got=num_res)
    if len(pool_sizes) != len(dilations) or not pool_sizes:
        raise ConfigError.build(
            "ConvIR pool_sizes and dilations need the same non-zero length",
            got=(list(pool_sizes), list(dilations)),
        )
    if any(a != 2 * b for a, b in pairwise(pool_sizes)):
        raise ConfigError.build(
            "ConvIR pool_sizes must halve from level to level",
            got=list(pool_sizes),
            expected="e.g. [8, 4, 2]",
        )
    if base_channel % 4 or base_channel % groups:
        raise ConfigError.build(
            "ConvIR base_channel must be divisible by 4 and by groups", got=(base_channel, groups)
        )


class ConvIR(nn.Module):
    """ConvIR: (B, 3, H, W) float32 in [0, 1] -> (B, 3, H, W), full resolution.

    H and W must be multiples of 4 * pool_sizes[0] (32 for the official models) and large enough that
    each dilated reflection pad fits inside its pooled map (256 px for the official models).
    ``forward_scales`` returns the authors' three outputs [1/4, 1/2, full].
    """

    def __init__(
        self,
        num_res: int = 4,
        base_channel: int = 32,
        pool_sizes: Sequence[int] = (8, 4, 2),
        dilations: Sequence[int] = (7, 9, 11),
        groups: int = 8,
    ) -> None:
        super().__init__()
        _validate(num_res, base_channel, pool_sizes, dilations, groups)
        c = base_channel
        stage_args = (tuple(pool_sizes), tuple(dilations), groups)
        # Submodule order below fixes the state_dict order of the official checkpoints.
        self.Encoder = nn.ModuleList(
            [
                Stage(c, num_res, *stage_args),
                Stage(c * 2, num_res, *stage_args),
                Stage(c * 4, num_res, *stage_args),
            ]
        )
        self.feat_extract = nn.ModuleList(
            [
                BasicConv(3, c, 3, relu=True, stride=1),
                BasicConv(c, c * 2, 3, relu=True, stride=2),
                BasicConv(c * 2, c * 4, 3, relu=True, stride=2),
                BasicConv(c * 4, c * 2, 4, relu=True, stride=2, transpose=True),
                BasicConv(c * 2, c, 4, relu=True, stride=2, transpose=True),
                BasicConv(c, 3, 3, relu=False, stride=1),
            ]
        )
        self.Decoder = nn.ModuleList(
            [
                Stage(c * 4, num_res, *stage_args),
                Stage(c * 2, num_res, *stage_args),
                Stage(c, num_res, *stage_args),
            ]
        )
        self.Convs = nn.ModuleList([BasicConv(c * 4, c * 2, 1, relu=True), BasicConv(c * 2, c, 1, relu=True)])
        self.ConvsOut = nn.ModuleList(
            [BasicConv(c * 4, 3, 3, relu=False), BasicConv(c * 2, 3, 3, relu=False)]
        )
        self.FAM1 = FAM(c * 4)
        self.SCM1 = SCM(c * 4)
        self.FAM2 = FAM(c * 2)
        self.SCM2 = SCM(c * 2)

    def forward_scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [(B, 3, H/4, W/4), (B, 3, H/2, W/2), (B, 3, H, W)], coarse to full."""
        x_2 = F.interpolate(x, scale_factor=0.5)  # nearest, as the authors downscale
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        z2, z4 = self.SCM2(x_2), self.SCM1(x_4)
        res1 = self.Encoder[0](self.feat_extract[0](x))
        res2 = self.Encoder[1](self.FAM2(self.feat_extract[1](res1), z2))
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), z4))

        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.Convs[0](torch.cat([self.feat_extract[3](z), res2], dim=1))
        z = self.Decoder[1](z)
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.Convs[1](torch.cat([self.feat_extract[4](z), res1], dim=1))
        z = self.Decoder[2](z)
        return [out_4, out_2, self.feat_extract[5](z) + x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_scales(x)[-1]


# ---------------------------------------------------------------- registry declarations


def convir_candidates(model: nn.Module) -> list[str]:
    """Every ResBlock of the encoder then the decoder, in forward order (module paths)."""
    names = []
    for part in ("Encoder", "Decoder"):
        for s, stage in enumerate(getattr(model, part)):
            names += [f"{part}.{s}.layers.{i}" for i in range(len(stage.layers))]
    return names


def convir_exclude(name: str, module: nn.Module) -> bool:
    """Skip depthwise convs and the 1x1 convs that generate dynamic filters from pooled context.

    The generators feed a tanh-squashed per-sample kernel; low-rank updates there change the filter
    shape itself rather than the features, which the BiLaLoRA search space leaves out.
    """
    if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
        return True
    return name.endswith(("square_att.conv", "H_spatial_att.conv", "W_spatial_att.conv"))


_COMMON = {
    "family": "convir",
    "pad_multiple": 32,
    "min_size": 256,
    "candidates": convir_candidates,
    "exclude": convir_exclude,
    "source": _SOURCE,
    "license": "MIT",
    "export_note": "ONNX yes: the None-size adaptive pool is written as a mean",
}


@register_backbone("convir-s", description="ConvIR-S dehazing (4 res blocks per stage)", **_COMMON)
def convir_s(**kwargs) -> ConvIR:
    return ConvIR(**{"num_res": 4, **kwargs})


@register_backbone("convir-b", description="ConvIR-B dehazing (8 res blocks per stage)", **_COMMON)
def convir_b(**kwargs) -> ConvIR:
    return ConvIR(**{"num_res": 8, **kwargs})


@register_backbone("convir-l", description="ConvIR-L dehazing (16 res blocks per stage)", **_COMMON)
def convir_l(**kwargs) -> ConvIR:
    return ConvIR(**{"num_res": 16, **kwargs})


# Tiny: 8 channels, 2 blocks per stage, dilation 1 and a 4-2-1 pyramid. The deepest pooled map is
# H / 16, and a reflect pad of 1 needs at least 2 pixels there, hence min size 32 and multiple 16.
@register_backbone(
    "tiny-convir",
    family="convir",
    pad_multiple=16,
    min_size=32,
    candidates=convir_candidates,
    exclude=convir_exclude,
    tiny=True,
    description="tiny ConvIR for tests",
    source=_SOURCE,
    license="MIT",
)
def tiny_convir(**kwargs) -> ConvIR:
    defaults = {"num_res": 2, "base_channel": 8, "pool_sizes": (4, 2, 1), "dilations": (1, 1, 1)}
    return ConvIR(**{**defaults, **kwargs})
