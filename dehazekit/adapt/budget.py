"""Wall-time estimate of an adaptation from a short measured probe, and step counts that fit a budget.

The probe runs a few Stage 1 and Stage 2 steps on a copy of the model with its own crop streams and
restores torch's RNG afterwards, so the real run is the same with or without it. The first step of each
stage is a warm-up (allocator, autograd graph) and is not timed.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dehazekit.accel import Accelerator
from dehazekit.adapt.config import AdaptConfig, schedule_for
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.progress import format_seconds

log = logging.getLogger(__name__)

PROBE_STEPS = 2  # timed steps per stage, after one warm-up step
LONG_RUN_STEPS = 100  # runs with more steps than this get an estimate before they start
_PROBE_SEED_OFFSET = 7919  # probe crops come from streams the real run never uses
_MIN_SEARCH_STEPS = 5


@dataclass
class Estimate:
    """Measured seconds per step of each stage and the wall time they imply for ``steps``."""

    seconds_per_step: dict[str, float]
    steps: dict[str, int]

    @property
    def total_s(self) -> float:
        return sum(self.seconds_per_step[k] * self.steps[k] for k in self.steps)

    def describe(self) -> str:
        parts = [f"{k} {self.steps[k]} steps x {self.seconds_per_step[k]:.2f} s" for k in self.steps]
        return f"estimated adaptation time ~{format_seconds(self.total_s)} ({', '.join(parts)})"


def _timed(step_fn: Any, batches: Any, count: int) -> float:
    step_fn(*next(batches))  # warm-up
    start = time.perf_counter()
    for _ in range(count):
        step_fn(*next(batches))
    return (time.perf_counter() - start) / count


def probe(
    model: nn.Module,
    objective: nn.Module,
    data: Any,
    config: AdaptConfig,
    steps: int = PROBE_STEPS,
    accel: Accelerator | None = None,
) -> dict[str, float]:
    """Seconds per search step and per fine-tune step, measured on a copy of ``model`` (gated LoRA in),
    on the run's device and precision when ``accel`` is given."""
    from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig
    from dehazekit.lora import gates_of

    rng = torch.get_rng_state()
    try:
        seed, bs = config.seed + _PROBE_SEED_OFFSET, config.batch_size
        alpha, w, every = (data.sampler(s, bs, seed=seed) for s in ("alpha", "w", "all"))
        work = copy.deepcopy(model)
        if accel is not None:
            accel.attach(work)
            alpha, w, every = (accel.batches(s) for s in (alpha, w, every))
        search = BilevelSearch(
            work,
            objective,
            SearchConfig(hypergrad=config.hypergrad, lr_alpha=config.lr_alpha, lr_w=config.lr_w),
        )
        search_s = _timed(search.step, ((next(alpha), next(w)) for _ in iter(int, 1)), steps)
        blocks = list(gates_of(work))[: max(1, config.top_k or 3)]
        tuner = FineTuner(work, objective, blocks, FinetuneConfig(lr=config.lr_w))
        finetune_s = _timed(tuner.step, ((next(every),) for _ in iter(int, 1)), steps)
    finally:
        torch.set_rng_state(rng)
    return {"search": search_s, "finetune": finetune_s}


def plan(
    config: AdaptConfig, seconds_per_step: dict[str, float], budget_s: float, spent_s: float = 0.0
) -> AdaptConfig:
    """``config`` with search/fine-tune step counts that fit ``budget_s`` seconds of training
    (``spent_s``: loading and probing already done, named in the error when nothing fits).

    The two stages keep the ratio of the objective's default schedule (one source of that ratio).
    """
    schedule = schedule_for(config.objective, config.rehaze_teacher)
    ratio = schedule.finetune_steps / schedule.search_steps
    per_round = seconds_per_step["search"] + ratio * seconds_per_step["finetune"]
    search = int(budget_s // per_round)
    if search < _MIN_SEARCH_STEPS:
        need = _MIN_SEARCH_STEPS * per_round
        raise ConfigError.build(
            "--time-budget is too short for this backbone, image size and machine",
            got=f"{format_seconds(max(budget_s, 0))} left after {format_seconds(spent_s)} "
            "of loading and probing",
            expected=f">= {format_seconds(need)} for {_MIN_SEARCH_STEPS} search rounds",
            fix="raise --time-budget, lower --size, or pick a smaller backbone",
        )
    return dataclasses.replace(config, search_steps=search, finetune_steps=int(search * ratio))


def estimate_and_plan(
    config: AdaptConfig,
    model: nn.Module,
    objective: nn.Module,
    data: Any,
    elapsed_s: float,
    accel: Accelerator | None = None,
) -> tuple[AdaptConfig, Estimate | None]:
    """Log the estimated wall time of a long run; with ``config.time_budget`` pick the step counts.

    ``elapsed_s``: time already spent (loading), taken out of the budget together with the probe.
    Returns the (re-planned) config and the estimate (None for short runs without a budget).
    """
    long_run = config.search_steps + config.finetune_steps > LONG_RUN_STEPS
    if config.time_budget is None and not long_run:
        return config, None
    start = time.perf_counter()
    per_step = probe(model, objective, data, config, accel=accel)
    if config.time_budget is not None:
        spent = elapsed_s + time.perf_counter() - start
        config = plan(config, per_step, config.time_budget - spent, spent)
    est = Estimate(per_step, {"search": config.search_steps, "finetune": config.finetune_steps})
    fitted = f"; fitted to --time-budget {format_seconds(config.time_budget)}" if config.time_budget else ""
    log.info("%s%s", est.describe(), fitted)
    return config, est


def refit_finetune(
    config: AdaptConfig, estimate: Estimate | None, search_s: float, elapsed_s: float
) -> AdaptConfig:
    """After Stage 1 of a budgeted run: fine-tune steps that fit what is left of the budget.

    A shared or throttled machine rarely keeps the probe's speed; the search's measured seconds per
    step rescale the probe's fine-tune figure, so the second stage absorbs the first one's drift.
    Never more steps than planned, at least one.
    """
    if config.time_budget is None or estimate is None or config.search_steps == 0:
        return config
    slowdown = (search_s / config.search_steps) / estimate.seconds_per_step["search"]
    per_step = estimate.seconds_per_step["finetune"] * slowdown
    fits = int(max(config.time_budget - elapsed_s, 0.0) // per_step)
    steps = max(1, min(config.finetune_steps, fits))
    if steps < config.finetune_steps:
        log.info(
            "search ran at %.2fx the probed speed; fine-tune steps %d -> %d to stay within --time-budget",
            1 / slowdown,
            config.finetune_steps,
            steps,
        )
    return dataclasses.replace(config, finetune_steps=steps)
