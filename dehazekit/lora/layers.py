"""LoRA layers wrapping a base nn.Conv2d / nn.Linear (peft-shaped, loralib factorisation).

Conv: A (r*kh, Cin/groups*kw), B (Cout*kh, r*kh), delta = (B @ A).view(weight.shape).
Linear: A (r, in), B (out, r), delta = B @ A. Contribution = gate * (lora_alpha / r) * delta, B = 0 at init.
The forward runs the base layer's own path with the merged weight, so padding modes such as
'reflect' and every stride/dilation/groups setting behave exactly as in the base layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dehazekit.lora.gates import Gate
from dehazekit.runtimes.errors import ConfigError, NumericalError


class LoRALayer(nn.Module):
    """Shared state and merge logic; subclasses give the factor shapes and the forward."""

    base_layer: nn.Module

    def __init__(
        self,
        base_layer: nn.Module,
        rank: int,
        lora_alpha: float,
        a_shape: tuple[int, int],
        b_shape: tuple[int, int],
        gate: Gate | None = None,
    ) -> None:
        super().__init__()
        if int(rank) < 1:
            raise ConfigError.build("LoRA rank must be >= 1", got=rank)
        if not math.isfinite(float(lora_alpha)) or float(lora_alpha) <= 0:
            raise ConfigError.build("lora_alpha must be a positive number", got=lora_alpha)
        self.base_layer = base_layer
        self.rank = int(rank)
        self.lora_alpha = float(lora_alpha)
        self.scaling = self.lora_alpha / self.rank
        weight = base_layer.weight
        self.lora_A = nn.Parameter(torch.empty(a_shape, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(b_shape, dtype=weight.dtype, device=weight.device))
        # Same init as loralib: A kaiming-uniform, B zero, so the wrapped layer starts as the base layer.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.set_gate(gate)
        self.block = ""  # the candidate block this layer belongs to (set by inject_lora)
        self._saved_weight: Tensor | None = None  # base weight before an in-place merge (exact unmerge)

    # The gate lives at <block>.lora_gate; keep only a plain reference here so it is not registered
    # (and saved) once per layer.
    def set_gate(self, gate: Gate | None) -> None:
        self.__dict__["_gate"] = gate

    @property
    def gate(self) -> Gate | None:
        return self.__dict__.get("_gate")

    @property
    def merged(self) -> bool:
        return self._saved_weight is not None

    def get_delta_weight(self) -> Tensor:
        """gate * scaling * (B @ A) in the base weight's shape."""
        delta = (self.lora_B @ self.lora_A).view(self.base_layer.weight.shape) * self.scaling
        if self.gate is not None:
            delta = delta * self.gate.value().to(delta.dtype)
        return delta

    def merged_weight(self) -> Tensor:
        return self.base_layer.weight + self.get_delta_weight()

    @torch.no_grad()
    def merge(self, safe_merge: bool = True, name: str = "") -> None:
        """Fold the delta into the base weight in place; ``unmerge`` restores the original exactly."""
        if self.merged:
            return
        new_weight = self.merged_weight()
        if safe_merge and not torch.isfinite(new_weight).all():
            bad = int((~torch.isfinite(new_weight)).sum())
            raise NumericalError.build(
                f"refusing to merge LoRA into layer {name or type(self.base_layer).__name__}",
                got=f"{bad} non-finite values in the merged weight",
                expected="finite weights",
                fix="the adapter diverged: lower the learning rate or resume from an earlier checkpoint",
            )
        self._saved_weight = self.base_layer.weight.detach().clone()
        self.base_layer.weight.copy_(new_weight)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self._saved_weight is None:
            return
        self.base_layer.weight.copy_(self._saved_weight)
        self._saved_weight = None

    def _weight_for_forward(self) -> Tensor:
        return self.base_layer.weight if self.merged else self.merged_weight()


class LoRAConv2d(LoRALayer):
    """LoRA around any ``nn.Conv2d`` (groups, padding_mode incl. 'reflect', stride, dilation, kh != kw).

    Forward: (B, Cin, H, W) -> (B, Cout, H', W') exactly as the base conv with weight W + delta.
    """

    def __init__(
        self, base_layer: nn.Conv2d, rank: int = 8, lora_alpha: float = 16.0, gate: Gate | None = None
    ) -> None:
        if not isinstance(base_layer, nn.Conv2d):
            raise ConfigError.build("LoRAConv2d wraps nn.Conv2d", got=type(base_layer).__name__)
        cout, cin_g, kh, kw = base_layer.weight.shape
        super().__init__(
            base_layer,
            rank,
            lora_alpha,
            a_shape=(rank * kh, cin_g * kw),
            b_shape=(cout * kh, rank * kh),
            gate=gate,
        )

    def forward(self, x: Tensor) -> Tensor:
        conv: nn.Conv2d = self.base_layer  # type: ignore[assignment]
        return conv._conv_forward(x, self._weight_for_forward(), conv.bias)


class LoRALinear(LoRALayer):
    """LoRA around ``nn.Linear``: (..., in) -> (..., out) with weight W + delta."""

    def __init__(
        self, base_layer: nn.Linear, rank: int = 8, lora_alpha: float = 16.0, gate: Gate | None = None
    ) -> None:
        if not isinstance(base_layer, nn.Linear):
            raise ConfigError.build("LoRALinear wraps nn.Linear", got=type(base_layer).__name__)
        out_f, in_f = base_layer.weight.shape
        super().__init__(base_layer, rank, lora_alpha, a_shape=(rank, in_f), b_shape=(out_f, rank), gate=gate)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self._weight_for_forward(), self.base_layer.bias)


def wrap_layer(layer: nn.Module, rank: int, lora_alpha: float, gate: Gate | None) -> LoRALayer:
    """Wrap a Conv2d or Linear in the matching LoRA layer."""
    if isinstance(layer, nn.Conv2d):
        return LoRAConv2d(layer, rank, lora_alpha, gate)
    if isinstance(layer, nn.Linear):
        return LoRALinear(layer, rank, lora_alpha, gate)
    raise ConfigError.build("LoRA wraps only Conv2d and Linear layers", got=type(layer).__name__)
