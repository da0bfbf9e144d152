"""MSBDN-DFF (Dong et al., "Multi-Scale Boosted Dehazing Network with Dense Feature Fusion", CVPR 2020).

Written from the paper and the authors' state_dict layout (BookerDeWitt/MSBDN-DFF, networks/MSBDN-DFF-v1-1.py,
``Net(res_blocks=18)``); attribute names are fixed by the official keys.

Structure: a 4-level encoder (stride-2 reflect-padded convs, 3 residual blocks per level), a residual
trunk at 1/16 resolution, and a decoder that upsamples with transposed convs. Dense feature fusion
(DFF) modules back-project every earlier level into the current one ("iter2" mode): the current
feature is resampled to each earlier scale, compared with it, and the error is resampled back and added.
The decoder's "boosting" adds the upsampled feature, refines, and subtracts the upsampled part again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones.registry import register_backbone
from dehazekit.runtimes.errors import ConfigError

_SOURCE = "BookerDeWitt/MSBDN-DFF@ab515e25 (networks/MSBDN-DFF-v1-1.py)"


class ConvLayer(nn.Module):
    """Reflection pad then conv (the pad stays a separate module so LoRA can wrap ``conv2d`` alone)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(nn.Module):
    """Unpadded stride-2 transposed conv: (H, W) -> (2H + 1, 2W + 1); the caller resizes to the skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv2d = nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(x)


class ResidualBlock(nn.Module):
    """x + 0.1 * conv(PReLU(conv(x))), both convs 3x3 with reflection padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.relu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * 0.1


class ConvBlock(nn.Module):
    """4x4 stride-2 conv (halves H, W) + PReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, 2, 1)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DeconvBlock(nn.Module):
    """4x4 stride-2 transposed conv (doubles H, W) + PReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.deconv(x))


def _back_project(
    x: torch.Tensor, earlier: list[torch.Tensor], toward: nn.ModuleList, back: nn.ModuleList
) -> torch.Tensor:
    """DFF back-projection: for each earlier feature, map the running fusion to its scale (``toward``),
    take the difference, map that back (``back``, reversed) and add it; the i-th sits len-i steps away."""
    fused = x
    for i, target in enumerate(earlier):
        steps = len(toward) - i
        ft = fused
        for j in range(steps):
            ft = toward[j](ft)
        ft = ft - target
        for j in reversed(range(steps)):
            ft = back[j](ft)
        fused = fused + ft
    return fused


class EncoderFusion(nn.Module):
    """DFF in the encoder: fuse the current (coarser) feature with every finer earlier feature.

    ``up_convs[j]`` goes from channels c / 2^j to c / 2^(j+1); ``down_convs[j]`` the reverse.
    """

    def __init__(self, channels: int, num_ft: int) -> None:
        super().__init__()
        self.num_ft = num_ft - 1
        self.up_convs = nn.ModuleList(
            DeconvBlock(channels // 2**i, channels // 2 ** (i + 1)) for i in range(self.num_ft)
        )
        self.down_convs = nn.ModuleList(
            ConvBlock(channels // 2 ** (i + 1), channels // 2**i) for i in range(self.num_ft)
        )

    def forward(self, x: torch.Tensor, earlier: list[torch.Tensor]) -> torch.Tensor:
        return _back_project(x, earlier, self.up_convs, self.down_convs)  # earlier: finest first


class DecoderFusion(nn.Module):
    """DFF in the decoder: fuse the current (finer) feature with every coarser earlier decoder feature."""

    def __init__(self, channels: int, num_ft: int) -> None:
        super().__init__()
        self.num_ft = num_ft - 1
        self.down_convs = nn.ModuleList(
            ConvBlock(channels * 2**i, channels * 2 ** (i + 1)) for i in range(self.num_ft)
        )
        self.up_convs = nn.ModuleList(
            DeconvBlock(channels * 2 ** (i + 1), channels * 2**i) for i in range(self.num_ft)
        )

    def forward(self, x: torch.Tensor, earlier: list[torch.Tensor]) -> torch.Tensor:
        return _back_project(x, earlier, self.down_convs, self.up_convs)  # earlier: coarsest first


def _res_stack(channels: int, count: int = 3) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(count)))


class MSBDN(nn.Module):
    """MSBDN-DFF: (B, 3, H, W) float32 -> (B, 3, H, W); H, W multiples of 16 and >= 32.

    ``width`` is the first level's channel count (16 in the official model; it doubles per level).
    """

    def __init__(self, res_blocks: int = 18, width: int = 16) -> None:
        super().__init__()
        if res_blocks < 1 or width < 1:
            raise ConfigError.build("MSBDN needs res_blocks >= 1 and width >= 1", got=(res_blocks, width))
        c1, c2, c4, c8, c16 = (width * 2**i for i in range(5))
        # Registration order below fixes the official state_dict order.
        self.conv_input = ConvLayer(3, c1, 11, 1)
        self.dense0 = _res_stack(c1)
        self.conv2x = ConvLayer(c1, c2, 3, 2)
        self.fusion1 = EncoderFusion(c2, 2)
        self.dense1 = _res_stack(c2)
        self.conv4x = ConvLayer(c2, c4, 3, 2)
        self.fusion2 = EncoderFusion(c4, 3)
        self.dense2 = _res_stack(c4)
        self.conv8x = ConvLayer(c4, c8, 3, 2)
        self.fusion3 = EncoderFusion(c8, 4)
        self.dense3 = _res_stack(c8)
        self.conv16x = ConvLayer(c8, c16, 3, 2)
        self.fusion4 = EncoderFusion(c16, 5)
        self.dehaze = nn.Sequential()
        for i in range(res_blocks):
            self.dehaze.add_module(f"res{i}", ResidualBlock(c16))
        self.convd16x = UpsampleConvLayer(c16, c8, 3, 2)
        self.dense_4 = _res_stack(c8)
        self.fusion_4 = DecoderFusion(c8, 2)
        self.convd8x = UpsampleConvLayer(c8, c4, 3, 2)
        self.dense_3 = _res_stack(c4)
        self.fusion_3 = DecoderFusion(c4, 3)
        self.convd4x = UpsampleConvLayer(c4, c2, 3, 2)
        self.dense_2 = _res_stack(c2)
        self.fusion_2 = DecoderFusion(c2, 4)
        self.convd2x = UpsampleConvLayer(c2, c1, 3, 2)
        self.dense_1 = _res_stack(c1)
        self.fusion_1 = DecoderFusion(c1, 5)
        self.conv_output = ConvLayer(c1, 3, 3, 1)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the encoder skips [1x, 2x, 4x, 8x] (after their residual stacks) and the 16x feature."""
        res1x = self.conv_input(x)
        memory = [res1x]
        skips = [self.dense0(res1x) + res1x]
        levels = (
            (self.conv2x, self.fusion1, self.dense1),
            (self.conv4x, self.fusion2, self.dense2),
            (self.conv8x, self.fusion3, self.dense3),
        )
        for down, fusion, dense in levels:
            feat = fusion(down(skips[-1]), memory)
            memory.append(feat)
            skips.append(dense(feat) + feat)
        return skips, self.fusion4(self.conv16x(skips[-1]), memory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, deep = self._encode(x)
        # Trunk on a doubled input, minus the original: the authors' "boosted" residual.
        doubled = deep * 2
        feat = self.dehaze(doubled) + doubled - deep
        memory = [feat]
        levels = (
            (self.convd16x, self.dense_4, self.fusion_4),
            (self.convd8x, self.dense_3, self.fusion_3),
            (self.convd4x, self.dense_2, self.fusion_2),
            (self.convd2x, self.dense_1, self.fusion_1),
        )
        for (up, dense, fusion), skip in zip(levels, reversed(skips)):
            upsampled = F.interpolate(up(feat), size=skip.shape[2:], mode="bilinear", align_corners=False)
            boosted = upsampled + skip
            feat = fusion(dense(boosted) + boosted - upsampled, memory)
            memory.append(feat)
        return self.conv_output(feat)


# ---------------------------------------------------------------- registry declarations


def msbdn_candidates(model: nn.Module) -> list[str]:
    """Residual blocks in forward order: encoder stages, the dehazing trunk, decoder stages."""
    names = [f"dense{s}.{i}" for s in range(4) for i in range(len(getattr(model, f"dense{s}")))]
    names += [f"dehaze.{name}" for name, _ in model.dehaze.named_children()]
    names += [f"dense_{s}.{i}" for s in (4, 3, 2, 1) for i in range(len(getattr(model, f"dense_{s}")))]
    return names


def msbdn_exclude(name: str, module: nn.Module) -> bool:
    """MSBDN blocks hold only full 3x3 convs; only a depthwise conv (none in the official model) is
    skipped."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


_COMMON = {
    "family": "msbdn",
    "pad_multiple": 16,
    "min_size": 32,
    "candidates": msbdn_candidates,
    "exclude": msbdn_exclude,
    "source": _SOURCE,
    "license": "none stated by the authors",
    "export_note": "ONNX yes (bilinear resize to the skip size)",
}


@register_backbone("msbdn", description="MSBDN-DFF, 18 trunk residual blocks", **_COMMON)
def msbdn(**kwargs) -> MSBDN:
    return MSBDN(**kwargs)


# Tiny: width 4 (channels 4..64) and a 2-block trunk. The trunk runs at H / 16 and its reflect pad of 1
# needs 2 pixels there, so the minimum size is 32 for every width.
@register_backbone(
    "tiny-msbdn", tiny=True, description="tiny MSBDN-DFF for tests", **{**_COMMON, "export_note": ""}
)
def tiny_msbdn(**kwargs) -> MSBDN:
    return MSBDN(**{"res_blocks": 2, "width": 4, **kwargs})
