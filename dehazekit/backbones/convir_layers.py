"""Building blocks of ConvIR.

Cui et al., "Revitalizing Convolutional Network for Image Restoration", TPAMI 2024.

Written from the paper's description and the authors' state_dict layout (c-yn/ConvIR, MIT): attribute names
below are fixed by the official checkpoint keys, so renaming any of them breaks loading.

The multi-shape kernel (MSK) module predicts, from globally pooled features, a small per-group kernel
(square k x k and two strips 1 x k / k x 1), applies it with dilation through unfold, and splits the
result into a low-frequency part (re-weighted against the mean) and a high-frequency residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv(nn.Module):
    """Conv (or stride-2 transposed conv) + optional GELU, held in ``main`` like the official layout."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        relu: bool = True,
        transpose: bool = False,
    ) -> None:
        super().__init__()
        if transpose:
            # kernel 4, stride 2, padding 1 doubles H and W exactly.
            conv: nn.Module = nn.ConvTranspose2d(
                in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2 - 1
            )
        else:
            conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2)
        layers = [conv, nn.GELU()] if relu else [conv]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def _dynamic_conv(
    x: torch.Tensor,
    kernel: torch.Tensor,
    kernel_size: tuple[int, int],
    dilation: int,
    groups: int,
    pad: nn.Module,
) -> torch.Tensor:
    """Convolve ``x`` with one predicted kernel per (sample, channel group).

    x: (B, C, H, W); kernel: (B, groups * kh * kw, 1, 1), already squashed to [-1, 1]; returns (B, C, H, W).
    The reflection pad keeps the size, so H and W must exceed the pad (the reason for ConvIR's min size).
    """
    b, c, h, w = x.shape
    taps = kernel_size[0] * kernel_size[1]
    cols = F.unfold(pad(x), kernel_size=kernel_size, dilation=dilation)
    cols = cols.reshape(b, groups, c // groups, taps, h * w)
    weights = kernel.reshape(b, groups, 1, taps, 1)
    return (cols * weights).sum(dim=3).reshape(b, c, h, w)


class SquareFilter(nn.Module):
    """Dynamic k x k filter from the global context (official name: ``square_att``)."""

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, groups: int = 8) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.groups = kernel_size, dilation, groups
        # Parameter registration order fixes the state_dict order: lamb_l, lamb_h, inside_all, conv, bn.
        self.lamb_l = nn.Parameter(torch.zeros(dim))
        self.lamb_h = nn.Parameter(torch.zeros(dim))
        self.inside_all = nn.Parameter(torch.zeros(dim, 1, 1))
        self.conv = nn.Conv2d(dim, groups * kernel_size**2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(groups * kernel_size**2)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.pad = nn.ReflectionPad2d(dilation * (kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(dim=(2, 3), keepdim=True)
        kernel = torch.tanh(self.bn(self.conv(context)))
        k = self.kernel_size
        low = _dynamic_conv(x, kernel, (k, k), self.dilation, self.groups, self.pad)
        low = low * (self.inside_all + 1.0) - self.inside_all * context
        return low * self.lamb_l[None, :, None, None] + x * (self.lamb_h[None, :, None, None] + 1.0)


class StripFilter(nn.Module):
    """Dynamic 1 x k (``horizontal=True``) or k x 1 filter (official name: ``spatial_strip_att``).

    The low-frequency reference is the mean along the strip's own axis. The official code uses
    AdaptiveAvgPool2d with a None size, which does not export to ONNX; a mean over that dim gives the same
    numbers.
    """

    def __init__(
        self, dim: int, kernel_size: int = 3, dilation: int = 1, groups: int = 2, horizontal: bool = True
    ) -> None:
        super().__init__()
        self.dilation, self.groups = dilation, groups
        self.kernel = (1, kernel_size) if horizontal else (kernel_size, 1)
        self.strip_dim = 3 if horizontal else 2
        pad = dilation * (kernel_size - 1) // 2
        self.pad = nn.ReflectionPad2d((pad, pad, 0, 0) if horizontal else (0, 0, pad, pad))
        self.conv = nn.Conv2d(dim, groups * kernel_size, kernel_size=1, bias=False)
        self.inside_all = nn.Parameter(torch.zeros(dim, 1, 1))
        self.lamb_l = nn.Parameter(torch.zeros(dim))
        self.lamb_h = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = torch.tanh(self.conv(x.mean(dim=(2, 3), keepdim=True)))
        low = _dynamic_conv(x, kernel, self.kernel, self.dilation, self.groups, self.pad)
        strip_mean = x.mean(dim=self.strip_dim, keepdim=True)
        low = low * (self.inside_all + 1.0) - self.inside_all * strip_mean
        return low * self.lamb_l[None, :, None, None] + x * (self.lamb_h[None, :, None, None] + 1.0)


class CubicAttention(nn.Module):
    """Horizontal then vertical strip filter, blended with the input by learned gamma/beta."""

    def __init__(self, dim: int, groups: int, dilation: int, kernel_size: int) -> None:
        super().__init__()
        self.H_spatial_att = StripFilter(dim, kernel_size, dilation, groups, horizontal=True)
        self.W_spatial_att = StripFilter(dim, kernel_size, dilation, groups, horizontal=False)
        self.gamma = nn.Parameter(torch.zeros(dim, 1, 1))
        self.beta = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.W_spatial_att(self.H_spatial_att(x)) + self.beta * x


class MultiShapeKernel(nn.Module):
    """Sum of the strip (cubic) branch and the square dynamic-filter branch."""

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, groups: int = 8) -> None:
        super().__init__()
        self.square_att = SquareFilter(dim, kernel_size, dilation, groups)
        self.strip_att = CubicAttention(dim, groups, dilation, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.strip_att(x) + self.square_att(x)


class DeepPoolLayer(nn.Module):
    """Multi-scale pooling pyramid (coarse to fine) with an MSK module per scale, summed at full size."""

    def __init__(
        self, dim: int, dim_out: int, pool_sizes: tuple[int, ...], dilations: tuple[int, ...], groups: int = 8
    ) -> None:
        super().__init__()
        self.pool_sizes = tuple(pool_sizes)
        self.pools = nn.ModuleList(nn.AvgPool2d(kernel_size=p, stride=p) for p in self.pool_sizes)
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, 3, 1, 1, bias=False) for _ in self.pool_sizes)
        self.dynas = nn.ModuleList(MultiShapeKernel(dim, 3, d, groups) for d in dilations)
        self.act = nn.GELU()
        self.conv_sum = nn.Conv2d(dim, dim_out, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        total = x
        carry = None
        for i, (pool, conv, dyna) in enumerate(zip(self.pools, self.convs, self.dynas)):
            pooled = pool(x) if carry is None else pool(x) + carry
            y = dyna(conv(pooled))
            total = total + F.interpolate(y, size, mode="bilinear", align_corners=True)
            if i < len(self.pool_sizes) - 1:
                # Each pyramid level is twice the previous one, so the coarse result feeds the next level.
                carry = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv_sum(self.act(total))


class ResBlock(nn.Module):
    """conv3x3-GELU, optional DeepPoolLayer (the last block of each stage), conv3x3, plus the input."""

    def __init__(
        self,
        dim: int,
        pool_sizes: tuple[int, ...] = (8, 4, 2),
        dilations: tuple[int, ...] = (7, 9, 11),
        use_filter: bool = False,
        groups: int = 8,
    ) -> None:
        super().__init__()
        middle: nn.Module = (
            DeepPoolLayer(dim, dim, pool_sizes, dilations, groups) if use_filter else nn.Identity()
        )
        self.main = nn.Sequential(
            BasicConv(dim, dim, 3, relu=True),
            middle,
            BasicConv(dim, dim, 3, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x
