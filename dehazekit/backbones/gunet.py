"""gUNet (Song et al., "Rethinking Performance Gains in Image Dehazing Networks"; IDKiro/gUNet, MIT).

A U-Net of gated-convolution residual blocks. Each block is ``x + proj(Wv(BN(x)) * sigmoid(Wg(BN(x))))``
where ``Wv`` is a 1x1 conv followed by a depthwise kxk reflect-padded conv and ``Wg`` a 1x1 conv.
Stages are joined by 2x2 stride-2 patch embedding (down), 1x1 conv + PixelShuffle (up) and
selective-kernel fusion of the upsampled features with a 1x1-projected skip. The output is a
residual on the input image.

State_dict keys, shapes and order follow the authors' ``gUNet`` so their checkpoints load unchanged
(``{'state_dict': ...}`` from DataParallel: the loader unwraps both the container and ``module.``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dehazekit.backbones.registry import register_backbone
from dehazekit.runtimes.errors import ConfigError


class GatedConv(nn.Module):
    """Gated convolution: proj(Wv(x) * sigmoid(Wg(x))); (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int, kernel_size: int, depth_gain: float) -> None:
        super().__init__()
        # Index layout (Wv.0, Wv.1, Wg.0) mirrors the authors' Sequentials so keys match.
        self.Wv = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, padding_mode="reflect"),
        )
        self.Wg = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Sigmoid())
        self.proj = nn.Conv2d(dim, dim, 1)
        self._init_weights(depth_gain)

    def _init_weights(self, gain: float) -> None:
        # Depth-scaled Xavier-style truncated normal: keeps the residual stream's variance stable
        # however many blocks are stacked (gain = (8 * total_depth) ** -1/4 in the paper).
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
                std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
                nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.Wv(x) * self.Wg(x))


class GatedBlock(nn.Module):
    """Pre-norm residual block: x + conv(BN(x))."""

    def __init__(self, dim: int, kernel_size: int, depth_gain: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.conv = GatedConv(dim, kernel_size, depth_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.norm(x))


class Stage(nn.Module):
    """``depth`` gated blocks at one resolution (module name ``blocks`` matches the authors')."""

    def __init__(self, dim: int, depth: int, kernel_size: int, depth_gain: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(GatedBlock(dim, kernel_size, depth_gain) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PatchEmbed(nn.Module):
    """Strided conv embedding (stride = patch); reflect padding so odd kernels keep the grid."""

    def __init__(self, in_chans: int, out_chans: int, patch: int, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = patch if kernel_size is None else kernel_size
        self.proj = nn.Conv2d(
            in_chans,
            out_chans,
            kernel_size,
            stride=patch,
            padding=(kernel_size - patch + 1) // 2,
            padding_mode="reflect",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PatchUnEmbed(nn.Module):
    """Conv to out_chans * patch**2 channels, then PixelShuffle(patch) (key ``proj.0``)."""

    def __init__(self, in_chans: int, out_chans: int, patch: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(
                in_chans,
                out_chans * patch * patch,
                kernel_size,
                padding=kernel_size // 2,
                padding_mode="reflect",
            ),
            nn.PixelShuffle(patch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class SKFusion(nn.Module):
    """Selective-kernel fusion of two same-shape feature maps.

    A squeeze MLP on the global mean of their sum predicts, per channel, softmax weights over the
    two inputs. The mean is written as ``x.mean((2, 3))`` (same numbers as adaptive pooling, exports
    cleanly).
    """

    def __init__(self, dim: int, branches: int = 2, reduction: int = 8) -> None:
        super().__init__()
        self.branches = branches
        hidden = max(dim // reduction, 4)
        # Index 0 of the authors' Sequential is the pooling layer, hence keys mlp.1 and mlp.3.
        self.mlp = nn.Sequential(
            nn.Identity(),
            nn.Conv2d(dim, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim * branches, 1, bias=False),
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(feats), dim=1)  # (B, branches, C, H, W)
        pooled = stacked.sum(dim=1).mean(dim=(2, 3), keepdim=True)
        logits = self.mlp(pooled)
        b, c = stacked.shape[0], stacked.shape[2]
        weights = torch.softmax(logits.view(b, self.branches, c, 1, 1), dim=1)
        return (stacked * weights).sum(dim=1)


class GUNet(nn.Module):
    """gUNet: (B, 3, H, W) float32 -> (B, 3, H, W); H, W multiples of 2 ** (len(depths) // 2)."""

    def __init__(
        self, kernel_size: int = 5, base_dim: int = 24, depths: Sequence[int] = (2, 2, 2, 4, 2, 2, 2)
    ) -> None:
        super().__init__()
        depths = [int(d) for d in depths]
        if len(depths) % 2 != 1 or min(depths) < 1:
            raise ConfigError.build(
                "gUNet depths must be an odd-length list of positive ints",
                got=depths,
                expected="e.g. [2, 2, 2, 4, 2, 2, 2]",
            )
        if kernel_size < 1 or kernel_size % 2 == 0 or base_dim < 1:
            raise ConfigError.build(
                "gUNet needs an odd kernel_size and base_dim >= 1",
                got={"kernel_size": kernel_size, "base_dim": base_dim},
            )
        self.half = len(depths) // 2
        encoder_dims = [base_dim * 2**i for i in range(self.half)]
        dims = encoder_dims + [base_dim * 2**self.half] + encoder_dims[::-1]
        gain = (8 * sum(depths)) ** (-1 / 4)

        self.inconv = PatchEmbed(3, dims[0], patch=1, kernel_size=3)
        self.layers = nn.ModuleList(Stage(d, n, kernel_size, gain) for d, n in zip(dims, depths))
        self.downs = nn.ModuleList(PatchEmbed(dims[i], dims[i + 1], patch=2) for i in range(self.half))
        self.ups = nn.ModuleList(PatchUnEmbed(dims[i + 1], dims[i], patch=2) for i in range(self.half))
        self.skips = nn.ModuleList(nn.Conv2d(dims[i], dims[i], 1) for i in range(self.half))
        self.fusions = nn.ModuleList(SKFusion(dims[i]) for i in range(self.half))
        self.outconv = PatchUnEmbed(dims[-1], 3, patch=1, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> [0, 1] scale; the authors' network works in [-1, 1]."""
        return self.forward_raw(x * 2 - 1) * 0.5 + 0.5

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' forward: input and output in [-1, 1] (their test.py maps x*2-1 and y*0.5+0.5)."""
        feat = self.inconv(x)
        skips = []
        for i in range(self.half):
            feat = self.layers[i](feat)
            skips.append(self.skips[i](feat))
            feat = self.downs[i](feat)
        feat = self.layers[self.half](feat)
        for i in reversed(range(self.half)):
            feat = self.fusions[i]([self.ups[i](feat), skips[i]])
            feat = self.layers[len(self.layers) - 1 - i](feat)
        return self.outconv(feat) + x


def gunet_candidates(model: nn.Module) -> list[str]:
    """Every gated block, encoder -> bottleneck -> decoder (the forward order of ``layers``)."""
    return [
        f"layers.{i}.blocks.{j}" for i, stage in enumerate(model.layers) for j in range(len(stage.blocks))
    ]


def gunet_exclude(name: str, module: nn.Module) -> bool:
    """LoRA goes on a block's 1x1 convs (Wv.0, Wg.0, proj) only: never the depthwise conv."""
    if not isinstance(module, nn.Conv2d):
        return True
    return module.groups != 1 or tuple(module.kernel_size) != (1, 1)


# Three 2x downsamples -> pad multiple 8. The reflect-padded depthwise conv at 1/8 scale needs
# more than kernel_size // 2 pixels there, hence min_size 24 (k=5) and 16 for the tiny k=3 config.
_COMMON = {
    "family": "gunet",
    "candidates": gunet_candidates,
    "exclude": gunet_exclude,
    "source": "IDKiro/gUNet@defba832",
    "license": "MIT",
}


@register_backbone(
    "gunet-t", pad_multiple=8, min_size=24, description="gUNet-T, gated-conv U-Net (edge size)", **_COMMON
)
def gunet_t(kernel_size: int = 5, base_dim: int = 24, depths: Sequence[int] = (2, 2, 2, 4, 2, 2, 2)) -> GUNet:
    return GUNet(kernel_size=kernel_size, base_dim=base_dim, depths=depths)


@register_backbone("gunet-s", pad_multiple=8, min_size=24, description="gUNet-S, gated-conv U-Net", **_COMMON)
def gunet_s(kernel_size: int = 5, base_dim: int = 24, depths: Sequence[int] = (4, 4, 4, 8, 4, 4, 4)) -> GUNet:
    return GUNet(kernel_size=kernel_size, base_dim=base_dim, depths=depths)


@register_backbone(
    "tiny-gunet",
    pad_multiple=8,
    min_size=16,
    tiny=True,
    description="tiny gUNet for tests (base_dim 8, one block per stage)",
    **_COMMON,
)
def tiny_gunet(
    kernel_size: int = 3, base_dim: int = 8, depths: Sequence[int] = (1, 1, 1, 1, 1, 1, 1)
) -> GUNet:
    return GUNet(kernel_size=kernel_size, base_dim=base_dim, depths=depths)
