"""Gate: one scalar logit per candidate block, shared by every LoRA layer inside that block.

A block's LoRA contribution is ``sigmoid(alpha) * scaling * delta``. The bilevel search learns
``alpha`` (upper level); fine-tuning freezes it; an ungated adapter fixes the factor to 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

GATE_ATTR = "lora_gate"  # registered as <block>.lora_gate; its parameter is <block>.lora_gate.alpha


class Gate(nn.Module):
    """Scalar gate ``g = sigmoid(alpha)`` (``alpha`` init 0 -> g = 0.5), or fixed to 1 when ungated."""

    def __init__(self, init_logit: float = 0.0, ungated: bool = False) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(init_logit)))
        # Ungated adapters keep alpha (so state_dicts keep one layout) but ignore it.
        self.register_buffer("ungated", torch.tensor(bool(ungated)), persistent=True)

    def value(self) -> Tensor:
        """The factor applied to the block's deltas: a 0-dim tensor (differentiable in alpha when gated)."""
        if bool(self.ungated):
            return torch.ones((), dtype=self.alpha.dtype, device=self.alpha.device)
        return torch.sigmoid(self.alpha)

    def freeze(self) -> Gate:
        """Keep the current value fixed (Stage 2 fine-tuning)."""
        self.alpha.requires_grad_(False)
        return self

    def fix_to_one(self) -> Gate:
        """Make the gate a constant 1 (plain LoRA)."""
        self.ungated.fill_(True)
        self.alpha.requires_grad_(False)
        return self

    @property
    def frozen(self) -> bool:
        return not self.alpha.requires_grad

    def forward(self, x: Tensor) -> Tensor:
        # Identity on purpose: the gate is registered inside the block, and blocks built as
        # nn.Sequential call every child in order; passing x through keeps their forward unchanged.
        return x

    def extra_repr(self) -> str:
        if bool(self.ungated):
            return "ungated (1.0)"
        return f"alpha={self.alpha.item():.4f}, gate={self.value().item():.4f}, frozen={self.frozen}"
