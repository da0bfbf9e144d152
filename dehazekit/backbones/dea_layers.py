"""DEA-Net building blocks: detail-enhanced convolution (DEConv) and content-guided attention (CGA).

Written from the paper (Chen et al., "DEA-Net: Single image dehazing based on detail-enhanced
convolution and content-guided attention", TIP 2024) and the authors' state_dict layout
(cecret3350/DEA-Net): module names and parameter shapes match so their checkpoints load.

DEConv runs five parallel 3x3 convolutions whose sum is itself one 3x3 convolution: central,
horizontal, vertical and angular *difference* convolutions (each a fixed linear map of a learned
kernel) plus a vanilla conv. We build the five kernels with plain tensor ops (no device-specific
constructors, so it runs on CPU), add them and convolve once; the same sum is the folded kernel of
the deploy form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Flattened 3x3 positions (row-major). Angular difference subtracts the neighbour one step around the
# ring: position p takes w[p] - w[RING_PREV[p]] (the centre subtracts itself and vanishes).
RING_PREV = (3, 0, 1, 6, 4, 2, 7, 8, 5)


class CentralDiffConv(nn.Module):
    """Central difference: learned kernel w with the centre replaced by w_c - sum(w).

    Convolving with it equals sum_k w_k * (x_k - x_centre): a response to differences from the
    centre pixel, which enhances edges.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=True)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.conv.weight
        centre = torch.zeros_like(w)
        centre[..., 1, 1] = 1.0
        return w - centre * w.sum(dim=(2, 3), keepdim=True), self.conv.bias


class AngularDiffConv(nn.Module):
    """Angular difference: each tap minus its ring neighbour (theta = 1, as the authors use)."""

    def __init__(self, dim: int, theta: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=True)
        self.theta = theta

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.conv.weight
        flat = w.flatten(2)
        shifted = flat[..., list(RING_PREV)]
        return (flat - self.theta * shifted).view_as(w), self.conv.bias


class HorizontalDiffConv(nn.Module):
    """Horizontal difference: a learned 3-tap column, +w in the left column and -w in the right.

    The authors store the taps as a Conv1d weight (out, in, 3); we keep that parameter layout.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1, bias=True)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.conv.weight  # (out, in, 3): tap r goes to row r
        return torch.stack([w, torch.zeros_like(w), -w], dim=-1), self.conv.bias


class VerticalDiffConv(nn.Module):
    """Vertical difference: a learned 3-tap row, +w in the top row and -w in the bottom row."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1, bias=True)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.conv.weight  # (out, in, 3): tap c goes to column c
        return torch.stack([w, torch.zeros_like(w), -w], dim=-2), self.conv.bias


class DEConv(nn.Module):
    """Detail-enhanced conv, (B, C, H, W) -> (B, C, H, W): five 3x3 branches summed into one kernel."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1_1 = CentralDiffConv(dim)
        self.conv1_2 = HorizontalDiffConv(dim)
        self.conv1_3 = VerticalDiffConv(dim)
        self.conv1_4 = AngularDiffConv(dim)
        self.conv1_5 = nn.Conv2d(dim, dim, 3, padding=1, bias=True)

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent single 3x3 conv (weight, bias); summed in the authors' branch order."""
        weight, bias = self.conv1_1.kernel()
        for branch in (self.conv1_2, self.conv1_3, self.conv1_4):
            w, b = branch.kernel()
            weight, bias = weight + w, bias + b
        return weight + self.conv1_5.weight, bias + self.conv1_5.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.fused_kernel()
        return F.conv2d(x, weight, bias, padding=1)


class SpatialAttention(nn.Module):
    """(B, C, H, W) -> (B, 1, H, W) logits from the channel mean and max (7x7 reflect conv)."""

    def __init__(self) -> None:
        super().__init__()
        self.sa = nn.Conv2d(2, 1, 7, padding=3, padding_mode="reflect", bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.sa(pooled)


class ChannelAttention(nn.Module):
    """(B, C, H, W) -> (B, C, 1, 1) logits: squeeze-excite MLP on the global mean (keys ca.0, ca.2)."""

    def __init__(self, dim: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = dim // reduction
        self.ca = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=True), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1, bias=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A mean over H, W is adaptive average pooling to 1x1, written so it exports cleanly.
        return self.ca(x.mean(dim=(2, 3), keepdim=True))


class PixelAttention(nn.Module):
    """Refines the coarse attention per channel: grouped 7x7 conv over (feature, coarse) pairs -> sigmoid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pa2 = nn.Conv2d(2 * dim, dim, 7, padding=3, padding_mode="reflect", groups=dim, bias=True)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # Interleave channels as (x_0, a_0, x_1, a_1, ...) so each group sees one feature/attention pair.
        pairs = torch.stack([x, coarse.expand(b, c, h, w)], dim=2).reshape(b, 2 * c, h, w)
        return torch.sigmoid(self.pa2(pairs))


def add_attention(module: nn.Module, dim: int, reduction: int) -> None:
    """Give ``module`` the CGA generators as ``sa``, ``ca``, ``pa`` (the authors' attribute names)."""
    module.sa = SpatialAttention()
    module.ca = ChannelAttention(dim, reduction)
    module.pa = PixelAttention(dim)


def content_guided_attention(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CGA on (B, C, H, W): spatial + channel logits form a coarse map that pixel attention refines
    into a per-channel, per-pixel weight in (0, 1)."""
    return module.pa(x, module.sa(x) + module.ca(x))


class CGAFusion(nn.Module):
    """Fuses an encoder feature ``x`` with a decoder feature ``y`` of the same shape (then a 1x1 conv)."""

    def __init__(self, dim: int, reduction: int = 8) -> None:
        super().__init__()
        add_attention(self, dim, reduction)
        self.conv = nn.Conv2d(dim, dim, 1, bias=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mixed = x + y
        weight = torch.sigmoid(content_guided_attention(self, mixed))
        return self.conv(mixed + weight * x + (1 - weight) * y)
