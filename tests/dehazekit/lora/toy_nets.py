"""Small networks for LoRA/bilevel tests: every conv flavour LoRA must support, and a registered toy
backbone whose block names include 'x1' and 'x10' (exact-name matching must keep them apart)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from dehazekit.backbones import registry

TOY_BACKBONE = "toy-lora-chain"


class ConvZoo(nn.Module):
    """(B, 4, H, W) -> (B, 4, H', W'): grouped, reflect, dilated, strided, non-square convs and a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.reflect = nn.Conv2d(6, 6, 3, padding=1, padding_mode="reflect")
        self.dilated = nn.Conv2d(6, 6, 3, padding=2, dilation=2, padding_mode="replicate")
        self.strided = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False)
        self.nonsquare = nn.Conv2d(8, 8, (3, 1), padding=(1, 0), padding_mode="circular")
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped(x))
        x = torch.relu(self.reflect(x))
        x = torch.relu(self.dilated(x))
        x = self.nonsquare(self.strided(x))
        return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ToyBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect")
        self.depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c)  # excluded from LoRA by the spec
        self.mix = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(torch.relu(self.depthwise(torch.relu(self.conv(x)))))


class ToyChain(nn.Module):
    """Residual chain with blocks x1..x{depth}: (B, 3, H, W) in [0, 1] -> (B, 3, H, W)."""

    def __init__(self, channels: int = 4, depth: int = 11) -> None:
        super().__init__()
        self.depth = depth
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        for i in range(1, depth + 1):
            self.add_module(f"x{i}", ToyBlock(channels))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        for i in range(1, self.depth + 1):
            h = getattr(self, f"x{i}")(h)
        return x + self.tail(h)


def _is_depthwise(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


@contextlib.contextmanager
def toy_backbone_registered() -> Iterator[str]:
    """Register the toy backbone only while a test needs it, so suites listing every backbone never see it."""
    registry._ensure_families_loaded()
    registry.register_backbone(
        TOY_BACKBONE,
        family="toy",
        pad_multiple=4,
        min_size=8,
        tiny=True,
        candidates=lambda m: [f"x{i}" for i in range(1, m.depth + 1)],
        exclude=_is_depthwise,
        description="test-only residual chain",
    )(ToyChain)
    try:
        yield TOY_BACKBONE
    finally:
        registry._REGISTRY.pop(TOY_BACKBONE, None)


def randomize_lora(model: nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Give every LoRA B a nonzero value so merged-vs-unmerged parity is a real check."""
    from dehazekit.lora import lora_parameters

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
