"""One adaptation run's loops: Stage 1 (bilevel search) and Stage 2 (top-K fine-tune), with checkpoints.

``dehazekit.adapt.api`` builds the pieces (data, frozen backbone with gated LoRA, objective) and hands
them to ``_Run``; the stage loops, their timing, progress and checkpoints live here.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from dehazekit.accel import Accelerator
from dehazekit.adapt.config import AdaptConfig
from dehazekit.adapt.data import UnpairedHazy
from dehazekit.adapt.distributed import Dist, GradAverager, check_identical, shard

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


class _Run:
    """One adaptation run's mutable state: model, samplers, history, timings, checkpoints."""

    def __init__(
        self,
        config: AdaptConfig,
        data: UnpairedHazy,
        model: nn.Module,
        objective: nn.Module,
        progress: ProgressFn | None,
        accel: Accelerator,
        dist: Dist | None = None,
    ) -> None:
        self.config, self.data, self.model, self.objective = config, data, model, objective
        self.dist = dist or Dist()
        self.progress = progress if self.dist.is_main else None
        # data parallel: each rank keeps its slice of the same global batch; gradients averaged in the loops
        self.reduce = GradAverager(self.dist) if self.dist.active else None
        bs = config.batch_size
        self.accel = accel
        self.samplers = {name: accel.batches(data.sampler(name, bs)) for name in ("alpha", "w", "all")}
        self.history: dict[str, list[dict[str, Any]]] = {"search": [], "finetune": []}
        self.timings: dict[str, float] = {"search": 0.0, "finetune": 0.0}
        self.guard: Any = None  # dehazekit.adapt.guard.Guard when the do-no-harm guard is on
        self.snapshots: dict[int, dict[str, Tensor]] = {}
        self.cache: dict[str, Any] | None = None  # PrefixCache.summary() of a --fixed-crops Stage 2

    # --- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self, stage: str, step: int, **stage_state: Any) -> None:
        from dehazekit.adapt.checkpoint import rng_state, save_checkpoint

        if not self.dist.is_main:  # identical state on every rank; one writer
            return
        save_checkpoint(
            self.config.out_dir,
            {
                "stage": stage,
                "step": step,
                "fingerprint": self.config.fingerprint(),
                "data_digest": self.data.digest,
                "history": self.history,
                "timings": self.timings,
                "samplers": {k: s.state_dict() for k, s in self.samplers.items()},
                "rng": rng_state(),
                **stage_state,
            },
        )

    def restore(self, state: dict[str, Any]) -> None:
        from dehazekit.adapt.checkpoint import set_rng_state

        self.history = {k: list(v) for k, v in state["history"].items()}
        self.timings = dict(state["timings"])
        for key, sampler in self.samplers.items():
            sampler.load_state_dict(state["samplers"][key])
        set_rng_state(state["rng"])

    def _due(self, step: int, total: int) -> bool:
        every = self.config.checkpoint_every
        return every > 0 and (step % every == 0 or step == total)

    def _report(self, stage: str, stats: dict[str, Any], total: int, step_s: float) -> None:
        self.history[stage].append(stats)
        if self.progress is not None:
            self.progress({"stage": stage, "total": total, "step_s": step_s, **stats})

    # --- Stage 1 -------------------------------------------------------------------------------
    def search(self, state: dict[str, Any] | None) -> dict[str, float]:
        from dehazekit.bilevel import BilevelSearch, SearchConfig

        c = self.config
        search = BilevelSearch(
            self.model,
            self.objective,
            SearchConfig(
                hypergrad=c.hypergrad,
                lr_alpha=c.lr_alpha,
                lr_w=c.lr_w,
                stop_top_k=c.top_k or 1,
                stop_patience=c.search_patience,
            ),
            reduce_grads=self.reduce,
        )
        if state is not None:
            search.load_state_dict(state["search"])
        total = c.search_steps
        while search.step_count < total and not search.converged:
            start = time.perf_counter()
            stats = search.step(self._next("alpha"), self._next("w"))
            step_s = time.perf_counter() - start
            self.timings["search"] += step_s
            self._report("search", stats, total, step_s)
            if self._due(search.step_count, total):
                self._checkpoint("search", search.step_count, search=search.state_dict())
        check_identical(list(search.alpha.values()), self.dist, "searched gates")
        return search.gate_values()

    def _next(self, split: str) -> Tensor:
        return shard(next(self.samplers[split]), self.dist)

    # --- Stage 2 -------------------------------------------------------------------------------
    def finetune(
        self, selected: Sequence[str], search_gates: dict[str, float], state: dict[str, Any] | None
    ) -> None:
        from dehazekit.bilevel import FinetuneConfig, FineTuner
        from dehazekit.lora import adapter_tensors

        c = self.config
        tuner = FineTuner(
            self.model, self.objective, list(selected), FinetuneConfig(lr=c.lr_w), reduce_grads=self.reduce
        )
        if state is not None and state["stage"] == "finetune":
            self.model.load_state_dict(state["adapter"], strict=False)
            tuner.load_state_dict(state["finetune"])
        total = c.finetune_steps
        if total == 0 and c.checkpoint_every > 0:
            self._checkpoint(
                "finetune",
                0,
                finetune=tuner.state_dict(),
                adapter=adapter_tensors(self.model),
                selected=list(selected),
                search_gates=search_gates,
            )
        self._guard_check(tuner.step_count, total)
        prefix = self._fixed_set() if total > tuner.step_count else None
        while tuner.step_count < total and not (self.guard is not None and self.guard.should_stop()):
            start = time.perf_counter()
            if prefix is None:
                stats = tuner.step(self._next("all"))
            else:
                stats = tuner.step_fixed(prefix, tuner.step_count % len(prefix.batches))
            step_s = time.perf_counter() - start
            self.timings["finetune"] += step_s
            self._report("finetune", stats, total, step_s)
            if self._due(tuner.step_count, total):
                self._checkpoint(
                    "finetune",
                    tuner.step_count,
                    finetune=tuner.state_dict(),
                    adapter=adapter_tensors(self.model),
                    selected=list(selected),
                    search_gates=search_gates,
                )
            self._guard_check(tuner.step_count, total)
        check_identical(list(tuner.w.values()), self.dist, "fine-tuned LoRA weights")
        if prefix is not None:
            self.cache = prefix.summary()

    def _fixed_set(self) -> Any:
        """--fixed-crops: the first N crops the Stage 2 sampler draws (the same after a resume), made
        into whole batches once, with their frozen prefix and per-input objective work cached."""
        from dehazekit.bilevel import PrefixCache
        from dehazekit.objectives import remember_inputs

        c = self.config
        if c.fixed_crops == 0:
            return None
        sampler = self.data.sampler("all", c.batch_size)  # a fresh one: independent of checkpoints
        count = -(-c.fixed_crops // c.batch_size)
        batches = [shard(self.accel.to_device(next(sampler)), self.dist) for _ in range(count)]
        remember_inputs(self.objective, batches)
        log.info("stage 2 on a fixed set of %d crops (%d batches)", count * c.batch_size, count)
        return PrefixCache(self.model, batches)

    def _guard_check(self, step: int, total: int) -> None:
        """Judge this checkpoint on the held-out images and keep its adapter for the final choice."""
        from dehazekit.lora import adapter_tensors

        every = self.config.guard_every or max(1, total // 4)
        if self.guard is None or not (step % every == 0 or step == total):
            return
        start = time.perf_counter()
        check = self.guard.check(self.model, step)
        self.snapshots[step] = adapter_tensors(self.model)
        self.timings["guard"] = self.timings.get("guard", 0.0) + time.perf_counter() - start
        verdict = "pass" if check.passed else "; ".join(check.failures)
        log.info("guard at fine-tune step %d: %s", step, verdict)


def _resume_state(run: _Run, config: AdaptConfig) -> tuple[dict | None, dict | None]:
    """(checkpoint state or None, a short description of where we resume)."""
    if not config.resume:
        return None, None
    from dehazekit.adapt.checkpoint import load_checkpoint

    state = load_checkpoint(config.out_dir, config.fingerprint(), run.data.digest)
    run.restore(state)
    log.info("resuming from checkpoint: stage %s, step %d", state["stage"], state["step"])
    return state, {"stage": state["stage"], "step": int(state["step"])}
