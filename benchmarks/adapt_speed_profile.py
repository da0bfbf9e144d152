"""Per-phase wall time of one optimisation step of each kind, and per-step costs (benchmarks/adapt_speed.py).

A step is split into: network forward on the crops (``fwd``), the objective (for `offline`: the airlight
estimate, the re-hazing and a second forward of the network on the re-hazed crops), the backward and the
optimiser update. Every kind runs one step per round, round-robin, so the load of a shared machine hits
all kinds alike; medians over the rounds after one warm-up round (fixed-crop kinds also run one untimed
epoch first, which records their caches). Stage 2 steps use the product's FineTuner/PrefixCache objects.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict

import torch

from dehazekit.backbones import forward_padded
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, PrefixCache, SearchConfig
from dehazekit.lora import inject_lora
from dehazekit.objectives import attach_network, create_objective, remember_inputs


class _Clock:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def __call__(self, name: str, fn, *a):
        start = time.perf_counter()
        out = fn(*a)
        self.times[name].append(time.perf_counter() - start)
        return out

    def medians(self, skip: int = 1) -> dict[str, float]:
        return {k: statistics.median(v[skip:] or v) for k, v in self.times.items()}


def _lora_model(base, args):
    from dehazekit.adapt.backbone import candidate_list

    model = copy.deepcopy(base)
    torch.manual_seed(args.seed)
    candidates = candidate_list(model, "auto")
    inject_lora(model, candidates, rank=8, lora_alpha=16.0, gated=True)
    return model, candidates


def _phases(clock: _Clock, tuner, objective, batch, forward) -> None:
    """One Stage 2 step, split into network forward / objective / backward / optimiser."""
    params = list(tuner.w.values())
    out = clock("fwd", forward, batch)
    loss = clock("objective", objective, batch, out)
    grads = clock("backward", torch.autograd.grad, loss, params)
    for p, g in zip(params, grads):
        p.grad = g

    def update() -> None:
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        tuner.opt.step()
        tuner.opt.zero_grad(set_to_none=True)

    clock("opt", update)


def profile_steps(base, data, args, selected: list[str], rounds: int) -> dict:
    """Per-phase medians of every step kind, measured round-robin (one step of each kind per round)."""
    from dehazekit.adapt.backbone import candidate_list

    deepest = candidate_list(base, "auto")[-args.top_k :]
    steppers = {
        "full": _full_phases(base, data, args),
        "search": _search_phases(base, data, args),
        "rehaze_parts": _rehaze_parts(base, data, args),
    }
    jobs = [("offline", selected, args.objective, False), ("offline-deepest", deepest, args.objective, False)]
    if args.clip:
        jobs.append(("h2c", selected, "h2c", True))
    for tag, blocks, objective_name, clip in jobs:
        for mode in ("random", "fixed", "fixed+cache"):
            steppers[f"{tag}:stage2:{mode}"] = _stage2_phases(
                base, data, args, blocks, objective_name, mode, clip
            )
    clocks = {name: _Clock() for name in steppers}
    for _ in range(rounds + 1):
        for name, step in steppers.items():
            step(clocks[name])
    result: dict = {name: clock.medians() for name, clock in clocks.items()}
    caches = {n: s.prefix.summary() for n, s in steppers.items() if getattr(s, "prefix", None) is not None}
    return {**result, "rounds": rounds, "selected": selected, "deepest": deepest, "caches": caches}


def full_finetune_setup(base, objective_name: str, data, args):
    """A trainable copy of ``base``, its objective, Adam at ``args.lr_full`` and a crop sampler: the
    full fine-tuning reference of the speed benchmarks."""
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(True)
    objective = create_objective(objective_name)
    attach_network(objective, model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr_full)
    return model, objective, opt, data.sampler("all", args.batch_size)


def _full_phases(base, data, args):
    model, objective, opt, sampler = full_finetune_setup(base, args.objective, data, args)

    def step(clock: _Clock) -> None:
        hazy = next(sampler)
        out = clock("fwd", forward_padded, model, hazy)
        loss = clock("objective", objective, hazy, out)
        clock("backward", loss.backward)
        clock("opt", lambda: (opt.step(), opt.zero_grad()))

    return step


def _search_phases(base, data, args):
    model, _ = _lora_model(base, args)
    objective = create_objective(args.objective)
    attach_network(objective, model)
    search = BilevelSearch(model, objective, SearchConfig(lr_w=args.lr_lora))
    alpha_s, w_s = data.sampler("alpha", args.batch_size), data.sampler("w", args.batch_size)

    def step(clock: _Clock) -> None:
        batch_w = next(w_s)
        clock("upper", search.upper_step, next(alpha_s), batch_w)
        clock("lower", search.lower_step, batch_w)

    return step


def _stage2_phases(base, data, args, selected, objective_name, mode: str, clip: bool):
    """A Stage 2 stepper: random crops, fixed crops (full network), or fixed crops with the prefix
    replayed and per-input objective work remembered; fixed ones run one untimed epoch first."""
    model, _ = _lora_model(base, args)
    options = {"h2c": {"clip": "ViT-B-32", "pretrained": "none"}} if clip else None
    objective = create_objective(objective_name, options)
    attach_network(objective, model)
    tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=args.lr_lora))
    if mode == "random":
        sampler = data.sampler("all", args.batch_size)

        def step(clock: _Clock) -> None:
            _phases(clock, tuner, objective, next(sampler), lambda b: forward_padded(model, b))

        return step
    fresh = data.sampler("all", args.batch_size)
    batches = [next(fresh) for _ in range(-(-args.fixed_crops // args.batch_size))]
    if mode == "fixed+cache":
        remember_inputs(objective, batches)
    prefix = PrefixCache(model, batches)
    if mode == "fixed":
        prefix._disable("benchmark: cache off on purpose")
    for i in range(len(batches)):
        tuner.step_fixed(prefix, i)
    counter = iter(range(10**9))

    def fixed_step(clock: _Clock) -> None:
        i = next(counter) % len(batches)
        _phases(clock, tuner, objective, batches[i], lambda b: prefix(i))

    fixed_step.prefix = prefix
    return fixed_step


def _rehaze_parts(base, data, args):
    """Inside the offline objective: airlight estimate (depends on the crop only) vs the second pass."""
    from dehazekit.objectives.rehaze import estimate_airlight

    model = copy.deepcopy(base)
    objective = create_objective(args.objective)
    attach_network(objective, model)
    sampler = data.sampler("all", args.batch_size)

    def step(clock: _Clock) -> None:
        hazy = next(sampler)
        clock("airlight", estimate_airlight, hazy)
        with torch.no_grad():
            target = forward_padded(model, hazy).clamp(0, 1)
        rehazed = clock("rehaze_total", objective.rehaze, hazy, target)
        clock("second_forward", forward_padded, model, rehazed)

    return step


def interleaved_costs(base, data, args, selected: list[str], rounds: int) -> dict:
    """Median seconds of one step of each kind, measured round-robin (one of each per round) so that the
    load of a shared machine hits every kind alike; plus the one-off cost of the cache's first epoch."""
    fresh = data.sampler("all", args.batch_size)
    batches = [next(fresh) for _ in range(-(-args.fixed_crops // args.batch_size))]
    steppers, one_off = {"full": _full_stepper(base, data, args)}, {}
    model, _ = _lora_model(base, args)
    objective = create_objective(args.objective)
    attach_network(objective, model)
    search = BilevelSearch(model, objective, SearchConfig(lr_w=args.lr_lora))
    alpha_s, w_s = data.sampler("alpha", args.batch_size), data.sampler("w", args.batch_size)
    steppers["search"] = lambda: search.step(next(alpha_s), next(w_s))
    for mode in ("random", "fixed", "fixed+cache"):
        model, _ = _lora_model(base, args)
        objective = create_objective(args.objective)
        attach_network(objective, model)
        tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=args.lr_lora))
        if mode == "random":
            sampler = data.sampler("all", args.batch_size)
            steppers["stage2:random"] = lambda t=tuner, s=sampler: t.step(next(s))
            continue
        prefix = PrefixCache(model, batches)
        if mode == "fixed":
            prefix._disable("benchmark: cache off on purpose")
        start = time.perf_counter()
        for i in range(len(batches)):  # first epoch: records the cache (and runs its check)
            tuner.step_fixed(prefix, i)
        one_off[f"stage2:{mode}:first_epoch"] = time.perf_counter() - start
        counter = iter(range(10**9))
        steppers[f"stage2:{mode}"] = lambda t=tuner, p=prefix, c=counter: t.step_fixed(
            p, next(c) % len(batches)
        )
    clock = _Clock()
    for _ in range(rounds + 1):
        for name, step in steppers.items():
            clock(name, step)
    return {"rounds": rounds, "median_s": clock.medians(), "one_off_s": one_off}


def _full_stepper(base, data, args):
    model, objective, opt, sampler = full_finetune_setup(base, args.objective, data, args)

    def step() -> None:
        hazy = next(sampler)
        loss = objective(hazy, forward_padded(model, hazy))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step
