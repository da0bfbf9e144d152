"""Stage 1: bilevel search over gated LoRA. Upper level = gate logits alpha, lower level = LoRA weights w.

Each ``step`` does, in plain sight:
  upper_step(batch_alpha, batch_w): hypergradient for alpha (``SearchConfig.hypergrad``), AdamW on alpha only.
  lower_step(batch_w):              gradient of f (objective + L2 on w) for w only, clip, Adam on w only.
Parameters are split by NAME (``lora_parameters`` / ``gate_parameters``), so alpha can never leak into
the w optimizer. The objective is any ``objective(hazy, out) -> scalar``; this code never knows which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dehazekit.bilevel import hypergrad as hg
from dehazekit.bilevel.selection import rank_blocks
from dehazekit.lora import gate_parameters, gates_of, lora_parameters
from dehazekit.runtimes.errors import ConfigError, InputError, NumericalError

Objective = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[dict[str, Any]], None]
GradReducer = Callable[[Tensor, list[Tensor]], tuple[Tensor, list[Tensor]]]  # (loss, grads) -> averaged


@dataclass
class SearchConfig:
    """Optimiser settings of the bilevel search (lr/betas/decay of alpha follow the paper)."""

    hypergrad: str = hg.DEFAULT_METHOD
    lr_alpha: float = 3e-4
    betas_alpha: tuple[float, float] = (0.5, 0.999)
    weight_decay_alpha: float = 1e-3
    lr_w: float = 1e-4
    # L2 on the LoRA B factors inside the lower loss f. The gate duplicates B's scale, so without it
    # every lower optimum is a valley along which the exact hypergradient is 0. A (a random projection
    # at init) is not decayed: its L2 gradient would swamp the objective's and shrink LoRA under Adam.
    weight_decay_w: float = 1e-3
    grad_clip: float = 5.0
    eps: float = 1e-8
    unrolled_xi: float | None = None  # virtual lower step for 'unrolled'; None -> Adam's effective step
    unrolled_r: float = 0.01
    cg_iters: int = 2  # Hessian-vector products per step for 'cg' (a warm start spends one on its residual)
    cg_damping: float = 1e-3
    cg_warm_start: bool = True
    # rank1/reference/cg/unrolled already evaluate df/dw on batch_w in the upper step; reusing it for the
    # lower step saves one forward/backward pass. It was taken at alpha before the upper update, which
    # moves alpha by ~lr_alpha, so the lower step's gradient is off by O(lr_alpha) only.
    reuse_lower_grad: bool = True
    # Early stop: ``converged`` turns true once the top-``stop_top_k`` gate set has not changed for
    # ``stop_patience`` consecutive steps (0 = never; the caller's loop decides whether to stop).
    stop_top_k: int = 3
    stop_patience: int = 0

    def __post_init__(self) -> None:
        self.betas_alpha = tuple(float(b) for b in self.betas_alpha)  # type: ignore[assignment]
        if self.hypergrad not in hg.METHODS:
            raise ConfigError.build(
                "unknown hypergradient method", got=self.hypergrad, expected=list(hg.METHODS)
            )
        for name in ("lr_alpha", "lr_w", "grad_clip", "eps", "unrolled_r"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError.build(f"SearchConfig.{name} must be > 0", got=value)
        for name in ("weight_decay_alpha", "weight_decay_w", "cg_damping"):
            if not getattr(self, name) >= 0:
                raise ConfigError.build(f"SearchConfig.{name} must be >= 0", got=getattr(self, name))
        if len(self.betas_alpha) != 2 or not all(0 <= b < 1 for b in self.betas_alpha):
            raise ConfigError.build(
                "SearchConfig.betas_alpha invalid", got=self.betas_alpha, expected="two in [0, 1)"
            )
        if self.unrolled_xi is not None and not self.unrolled_xi > 0:
            raise ConfigError.build("SearchConfig.unrolled_xi must be > 0", got=self.unrolled_xi)
        for name, low in (("cg_iters", 1), ("stop_top_k", 1), ("stop_patience", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError.build(f"SearchConfig.{name} must be an integer >= {low}", got=value)


def check_batch(batch: Tensor, name: str) -> None:
    """Batches are (B, 3, S, S) floating tensors in [0, 1]."""
    if (
        not isinstance(batch, Tensor)
        or batch.ndim != 4
        or batch.shape[1] != 3
        or not batch.is_floating_point()
    ):
        got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise InputError.build(f"{name} must be a (B, 3, H, W) float tensor", got=got)


def check_loss(loss: Tensor, step: int) -> None:
    """The objective must give a finite scalar; a NaN would silently poison every later step."""
    if loss.ndim != 0:
        raise ConfigError.build("objective must return a scalar", got=tuple(loss.shape), expected="()")
    if not torch.isfinite(loss):
        raise NumericalError.build(
            f"objective is not finite at step {step}",
            got=float(loss.detach()),
            fix="lower the learning rates or check the input images",
        )


def trainable_split(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """(trainable gate logits, LoRA factors) by name; freeze every other parameter of the model."""
    alpha = {n: p for n, p in gate_parameters(model).items() if not _ungated(model, n)}
    w = lora_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name in alpha or name in w)
    return alpha, w


def _ungated(model: nn.Module, alpha_name: str) -> bool:
    block = alpha_name[: -len(".lora_gate.alpha")]
    return bool(gates_of(model)[block].ungated)


class BilevelSearch:
    """Alternating upper (alpha) / lower (w) optimisation on a model with gated LoRA injected.

    The network runs through ``forward_padded`` (any crop size reaches the backbone's multiple and
    minimum size, e.g. ConvIR's 256 px).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        config: SearchConfig | None = None,
        callback: StepCallback | None = None,
        reduce_grads: GradReducer | None = None,
    ) -> None:
        self.model, self.objective = model, objective
        self.config = config or SearchConfig()
        self.callback = callback
        self.reduce_grads = reduce_grads  # data-parallel hook: average (loss, grads) over processes
        if reduce_grads is not None and self.config.hypergrad == "cg":
            # cg differentiates through the lower gradient (Hessian-vector products); averaging it across
            # processes would cut that graph
            raise ConfigError.build(
                "--hypergrad cg runs in a single process",
                got="cg with several processes",
                fix="use --hypergrad first-order (the default) with --nproc",
            )
        # The backbone is frozen, normalisation statistics included: eval mode keeps BatchNorm layers
        # (gUNet) on their running stats instead of re-estimating them from the unlabeled batches.
        model.eval()
        self.alpha, self.w = trainable_split(model)
        if not self.alpha or not self.w:
            raise ConfigError.build(
                "bilevel search needs gated LoRA in the model",
                got=f"{len(self.alpha)} gates, {len(self.w)} LoRA tensors",
                fix="call dehazekit.lora.inject_lora(model, blocks, gated=True) first",
            )
        c = self.config
        self.opt_alpha = torch.optim.AdamW(
            list(self.alpha.values()), lr=c.lr_alpha, betas=c.betas_alpha, weight_decay=c.weight_decay_alpha
        )
        self.opt_w = torch.optim.Adam(list(self.w.values()), lr=c.lr_w)
        self.step_count = 0
        self._lower_cache: tuple[Tensor, Tensor, hg.Grads] | None = None  # (batch_w, f, df/dw) of upper_step
        self._cg_v: hg.Grads | None = None  # last CG solution, the warm start of the next step
        self._top: tuple[set[str], int] = (set(), 0)  # (current top-K set, steps it has been unchanged)

    # --- the two levels ------------------------------------------------------------------------
    def upper_step(self, batch_alpha: Tensor, batch_w: Tensor) -> dict[str, float]:
        """One AdamW step on alpha with the configured hypergradient (F on batch_alpha, f on batch_w)."""
        check_batch(batch_alpha, "batch_alpha")
        check_batch(batch_w, "batch_w")
        g_alpha, stats = self.hypergradient(batch_alpha, batch_w)
        for p, g in zip(self.alpha.values(), g_alpha):
            p.grad = g.detach().clone()
        stats["alpha_grad_norm"] = float(hg.sq_norm(g_alpha).sqrt())
        self.opt_alpha.step()
        self.opt_alpha.zero_grad(set_to_none=True)
        return stats

    def lower_step(self, batch_w: Tensor) -> dict[str, float]:
        """One Adam step on the LoRA weights w only (alpha gets no gradient), norm clipped."""
        check_batch(batch_w, "batch_w")
        loss, grads = self._lower_grad(batch_w)
        for p, g in zip(self.w.values(), grads):
            p.grad = g
        norm = torch.nn.utils.clip_grad_norm_(list(self.w.values()), self.config.grad_clip)
        self.opt_w.step()
        self.opt_w.zero_grad(set_to_none=True)
        return {"lower_loss": float(loss), "w_grad_norm": float(norm)}

    # --- hypergradients ------------------------------------------------------------------------
    def hypergradient(self, batch_alpha: Tensor, batch_w: Tensor) -> tuple[hg.Grads, dict[str, float]]:
        """(d F(w*(alpha), alpha) / d alpha as estimated by the configured method, step numbers)."""
        method = self.config.hypergrad
        if method == "unrolled":
            return self._unrolled(batch_alpha, batch_w)
        F, dF_da, dF_dw = self._grads(batch_alpha, lower=False)
        stats = {"upper_loss": float(F)}
        if method == "first-order":
            return hg.first_order(dF_da), stats
        if method == "cg":
            return self._cg(dF_da, dF_dw, batch_w, stats)
        f, df_da, df_dw = self._grads(batch_w, lower=True)
        self._keep_lower_grad(batch_w, f, df_dw)
        coef = hg.implicit_coefficient(dF_dw, df_dw, self.config.eps)
        stats.update(lower_loss_upper=float(f), implicit_coef=float(coef))
        if method == "rank1":
            return hg.rank1(dF_da, dF_dw, df_da, df_dw, self.config.eps), stats
        return hg.reference(dF_da, dF_dw, df_da, df_dw, self.config.lr_w, self.config.eps), stats

    def _cg(
        self, dF_da: hg.Grads, dF_dw: hg.Grads, batch_w: Tensor, stats: dict[str, float]
    ) -> tuple[hg.Grads, dict[str, float]]:
        c = self.config
        alpha, w = list(self.alpha.values()), list(self.w.values())
        f, _, df_dw = self._grads(batch_w, lower=True, create_graph=True)
        self._keep_lower_grad(batch_w, f, [g.detach() for g in df_dw])
        linked = [i for i, g in enumerate(df_dw) if g.requires_grad]  # a zero-filled gradient has no graph

        def mixed(p: hg.Grads) -> tuple[hg.Grads, hg.Grads]:
            out = torch.autograd.grad(
                [df_dw[i] for i in linked],
                alpha + w,
                [p[i] for i in linked],
                retain_graph=True,
                allow_unused=True,
            )
            out = [torch.zeros_like(q) if g is None else g for q, g in zip(alpha + w, out)]
            return out[: len(alpha)], out[len(alpha) :]

        x0 = self._cg_v if c.cg_warm_start else None
        g_alpha, self._cg_v = hg.cg(dF_da, dF_dw, mixed, c.cg_iters, c.cg_damping, x0)
        self._cg_v = [v.detach() for v in self._cg_v]
        stats["lower_loss_upper"] = float(f)
        return g_alpha, stats

    def _unrolled(self, batch_alpha: Tensor, batch_w: Tensor) -> tuple[hg.Grads, dict[str, float]]:
        c, record = self.config, {}
        f, _, df_dw = self._grads(batch_w, lower=True, want_alpha=False)
        self._keep_lower_grad(batch_w, f, df_dw)
        xi = c.unrolled_xi or hg.adam_effective_lr(self.opt_w, df_dw, clipped(df_dw, c.grad_clip))

        def upper() -> tuple[hg.Grads, hg.Grads]:
            record["F"], ga, gw = self._grads(batch_alpha, lower=False)
            return ga, gw

        g_alpha = hg.unrolled(
            list(self.w.values()),
            upper,
            lambda: self._grads(batch_w, lower=True)[1:],
            xi,
            c.unrolled_r,
            df_dw=df_dw,
        )
        return g_alpha, {"upper_loss": float(record["F"]), "unrolled_xi": xi}  # F at the virtual w'

    # --- losses and gradients ------------------------------------------------------------------
    def _net(self, x: Tensor) -> Tensor:
        from dehazekit.backbones import forward_padded

        return forward_padded(self.model, x)

    def _loss(self, batch: Tensor, lower: bool) -> Tensor:
        """F (upper) or f (lower: the objective plus L2 on the LoRA B factors) at the current (w, alpha)."""
        loss = self.objective(batch, self._net(batch))
        check_loss(loss, self.step_count)
        if lower and self.config.weight_decay_w > 0:
            decayed = [p for n, p in self.w.items() if n.endswith(".lora_B")]
            loss = loss + 0.5 * self.config.weight_decay_w * hg.sq_norm(decayed)
        return loss

    def _grads(
        self, batch: Tensor, lower: bool, want_alpha: bool = True, create_graph: bool = False
    ) -> tuple[Tensor, hg.Grads, hg.Grads]:
        """Loss and its gradients w.r.t. alpha and w (zeros where unused)."""
        loss = self._loss(batch, lower)
        alpha = list(self.alpha.values()) if want_alpha else []
        params = alpha + list(self.w.values())
        grads = torch.autograd.grad(loss, params, allow_unused=True, create_graph=create_graph)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        if self.reduce_grads is not None:  # before any use, so every rank combines the same gradients
            loss, grads = self.reduce_grads(loss, grads)
        return loss.detach(), grads[: len(alpha)], grads[len(alpha) :]

    def _keep_lower_grad(self, batch_w: Tensor, f: Tensor, df_dw: hg.Grads) -> None:
        if self.config.reuse_lower_grad:
            self._lower_cache = (batch_w, f, df_dw)

    def _lower_grad(self, batch_w: Tensor) -> tuple[Tensor, hg.Grads]:
        cache, self._lower_cache = self._lower_cache, None
        if cache is not None and cache[0] is batch_w:
            return cache[1], cache[2]
        loss, _, grads = self._grads(batch_w, lower=True, want_alpha=False)
        return loss, grads

    def step(self, batch_alpha: Tensor, batch_w: Tensor) -> dict[str, Any]:
        """upper_step then lower_step; returns (and passes to the callback) the step's numbers."""
        stats: dict[str, Any] = {**self.upper_step(batch_alpha, batch_w), **self.lower_step(batch_w)}
        self.step_count += 1
        stats["step"] = self.step_count
        self._track_top_k()
        if self.callback is not None:
            self.callback(stats)
        return stats

    def run(self, batches: Iterable[tuple[Tensor, Tensor]], steps: int) -> list[dict[str, Any]]:
        """Run up to ``steps`` steps over (batch_alpha, batch_w) pairs; stops early once ``converged``."""
        history = []
        for _, (batch_alpha, batch_w) in zip(range(steps), batches):
            history.append(self.step(batch_alpha, batch_w))
            if self.converged:
                break
        return history

    def _track_top_k(self) -> None:
        gates = self.gate_values()
        top = set(rank_blocks(gates)[: min(self.config.stop_top_k, len(gates))])
        self._top = (top, self._top[1] + 1 if top == self._top[0] else 0)

    @property
    def converged(self) -> bool:
        """True once the top-K gate set has been unchanged for ``stop_patience`` steps (never when 0)."""
        patience = self.config.stop_patience
        return patience > 0 and self._top[1] >= patience

    def gate_values(self) -> dict[str, float]:
        """{block: sigmoid(alpha)} of every gated block."""
        return {
            n[: -len(".lora_gate.alpha")]: float(torch.sigmoid(p.detach())) for n, p in self.alpha.items()
        }

    # --- resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "config": dataclasses.asdict(self.config),
            "alpha": {n: p.detach().clone() for n, p in self.alpha.items()},
            "w": {n: p.detach().clone() for n, p in self.w.items()},
            "opt_alpha": self.opt_alpha.state_dict(),
            "opt_w": self.opt_w.state_dict(),
            "cg_v": None if self._cg_v is None else [v.clone() for v in self._cg_v],
            "top_k": (sorted(self._top[0]), self._top[1]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_named(self.alpha, state["alpha"], "gate logits")
        load_named(self.w, state["w"], "LoRA weights")
        self.opt_alpha.load_state_dict(state["opt_alpha"])
        self.opt_w.load_state_dict(state["opt_w"])
        self._cg_v = None if state.get("cg_v") is None else [v.clone() for v in state["cg_v"]]
        self.step_count = int(state["step"])
        top, unchanged = state.get("top_k", ([], 0))
        self._top = (set(top), int(unchanged))


def clipped(grads: hg.Grads, max_norm: float) -> hg.Grads:
    """``grads`` scaled as clip_grad_norm_ would scale them (without touching any parameter)."""
    scale = min(1.0, max_norm / (float(hg.sq_norm(grads).sqrt()) + 1e-6))
    return [g * scale for g in grads]


def load_named(params: dict[str, nn.Parameter], values: dict[str, Tensor], what: str) -> None:
    """Copy saved tensors into parameters with exactly the same names and shapes."""
    if set(params) != set(values):
        missing, extra = sorted(set(params) - set(values)), sorted(set(values) - set(params))
        raise ConfigError.build(
            f"checkpoint {what} do not match the model",
            got=f"missing {missing[:4]}, unexpected {extra[:4]}",
            fix="resume with the same backbone, blocks and rank",
        )
    with torch.no_grad():
        for name, p in params.items():
            if p.shape != values[name].shape:
                raise ConfigError.build(
                    f"checkpoint {what} shape mismatch at {name}",
                    got=tuple(values[name].shape),
                    expected=tuple(p.shape),
                )
            p.copy_(values[name])
