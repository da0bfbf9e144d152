"""Stage 2: fine-tune LoRA on the selected blocks only.

LoRA is removed from every other block, the selected blocks keep their searched weights, and their
gates stay frozen at the searched value, so the network starts exactly where the search ended for
those blocks. Adam on the LoRA weights only (selected by name), norm clipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dehazekit.bilevel.prefix import PrefixCache
from dehazekit.bilevel.search import GradReducer, Objective, check_batch, check_loss, load_named
from dehazekit.lora import gates_of, lora_parameters, remove_lora
from dehazekit.runtimes.errors import ConfigError


@dataclass
class FinetuneConfig:
    lr: float = 1e-4
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError.build(f"FinetuneConfig.{name} must be > 0", got=value)


class FineTuner:
    """Adam on the selected blocks' LoRA weights; gates frozen; everything else frozen."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        selected: Sequence[str],
        config: FinetuneConfig | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        reduce_grads: GradReducer | None = None,
    ) -> None:
        if not selected:
            raise ConfigError.build("fine-tuning needs at least one selected block")
        self.model, self.objective = model, objective
        self.config = config or FinetuneConfig()
        self.callback = callback
        self.reduce_grads = reduce_grads  # data-parallel hook: average (loss, grads) over processes
        self.selected = list(selected)
        model.eval()  # frozen backbone incl. BatchNorm statistics (see BilevelSearch)
        remove_lora(model, keep=self.selected)
        for gate in gates_of(model).values():
            gate.freeze()
        self.w = lora_parameters(model)
        for name, p in model.named_parameters():
            p.requires_grad_(name in self.w)
        self.opt = torch.optim.Adam(list(self.w.values()), lr=self.config.lr)
        self.step_count = 0

    def step(self, batch: Tensor) -> dict[str, Any]:
        """One Adam step on the objective over ``batch`` ((B, 3, H, W) in [0, 1])."""
        from dehazekit.backbones import forward_padded

        check_batch(batch, "batch")
        return self._update(batch, forward_padded(self.model, batch))

    def step_fixed(self, prefix: PrefixCache, index: int) -> dict[str, Any]:
        """One Adam step on batch ``index`` of a fixed crop set, its frozen prefix replayed by ``prefix``."""
        batch = prefix.batches[index]
        check_batch(batch, "batch")
        return self._update(batch, prefix(index))

    def _update(self, batch: Tensor, out: Tensor) -> dict[str, Any]:
        loss = self.objective(batch, out)
        check_loss(loss, self.step_count)
        params = list(self.w.values())
        grads = [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True))
        ]
        if self.reduce_grads is not None:
            loss, grads = self.reduce_grads(loss, grads)
        for p, g in zip(params, grads):
            p.grad = g
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_count += 1
        stats = {"step": self.step_count, "loss": float(loss.detach()), "w_grad_norm": float(norm)}
        if self.callback is not None:
            self.callback(stats)
        return stats

    def run(self, batches: Iterable[Tensor], steps: int) -> list[dict[str, Any]]:
        return [self.step(batch) for _, batch in zip(range(steps), batches)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "config": dataclasses.asdict(self.config),
            "selected": self.selected,
            "w": {n: p.detach().clone() for n, p in self.w.items()},
            "opt": self.opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["selected"]) != self.selected:
            raise ConfigError.build(
                "checkpoint was fine-tuning other blocks", got=self.selected, expected=state["selected"]
            )
        load_named(self.w, state["w"], "LoRA weights")
        self.opt.load_state_dict(state["opt"])
        self.step_count = int(state["step"])
