"""Per-phase wall time of one optimisation step of each kind (benchmarks/adapt_speed.py's profile).

A step is split into: network forward on the crops (``fwd``), the objective (for `offline`: the airlight
estimate, the re-hazing and a second forward of the network on the re-hazed crops), the backward and the
optimiser update. Medians over ``--profile-steps`` steps after one warm-up step; the Stage 2 steps use the
same FineTuner/PrefixCache objects as the product, timed from outside.
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
    from dehazekit.adapt.api import candidate_list

    model = copy.deepcopy(base)
    torch.manual_seed(args.seed)
    candidates = candidate_list(model, "auto")
    inject_lora(model, candidates, rank=8, lora_alpha=16.0, gated=True)
    return model, candidates


def _finetune_phases(tuner, objective, batch_of, forward, steps: int, warmup: int = 1) -> dict[str, float]:
    clock = _Clock()
    params = list(tuner.w.values())
    for i in range(steps + warmup):
        batch = batch_of(i)
        out = clock("fwd", forward, i, batch)
        loss = clock("objective", objective, batch, out)
        grads = clock("backward", torch.autograd.grad, loss, params)
        for p, g in zip(params, grads):
            p.grad = g

        def update() -> None:
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            tuner.opt.step()
            tuner.opt.zero_grad(set_to_none=True)

        clock("opt", update)
    return clock.medians(skip=warmup)


def profile_steps(base, data, args, selected: list[str] | None) -> dict:
    result: dict = {}
    objective = create_objective(args.objective)
    # full fine-tuning
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(True)
    attach_network(objective, model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr_full)
    sampler, clock = data.sampler("all", args.batch_size), _Clock()
    for _ in range(args.profile_steps + 1):
        hazy = next(sampler)
        out = clock("fwd", forward_padded, model, hazy)
        loss = clock("objective", objective, hazy, out)
        clock("backward", loss.backward)
        clock("opt", lambda: (opt.step(), opt.zero_grad()))
    result["full"] = clock.medians()
    result["rehaze_parts"] = _rehaze_parts(model, objective, data, args)
    # search
    model, candidates = _lora_model(base, args)
    attach_network(objective, model)
    search = BilevelSearch(model, objective, SearchConfig(lr_w=args.lr_lora))
    alpha_s, w_s, clock = data.sampler("alpha", args.batch_size), data.sampler("w", args.batch_size), _Clock()
    for _ in range(args.profile_steps + 1):
        bw = next(w_s)
        clock("upper", search.upper_step, next(alpha_s), bw)
        clock("lower", search.lower_step, bw)
    result["search"] = clock.medians()
    # the searched blocks, and the deepest K (the most a prefix cache can skip)
    selected = selected or candidates[len(candidates) // 2 : len(candidates) // 2 + args.top_k]
    deepest = candidates[-args.top_k :]
    result["selected"], result["deepest"] = selected, deepest
    result.update(_stage2(base, data, args, selected, args.objective, "offline"))
    result.update(_stage2(base, data, args, deepest, args.objective, "offline-deepest"))
    if args.clip:
        result.update(_stage2(base, data, args, selected, "h2c", "h2c", clip=True))
    return result


def _stage2(base, data, args, selected, objective_name, tag, clip: bool = False) -> dict:
    """Stage 2 steps: random crops, fixed crops (full network), fixed crops with the prefix replayed."""
    out = {}
    fresh = data.sampler("all", args.batch_size)
    batches = [next(fresh) for _ in range(-(-args.fixed_crops // args.batch_size))]
    for mode in ("random", "fixed", "fixed+cache"):
        model, _ = _lora_model(base, args)
        options = {"h2c": {"clip": "ViT-B-32", "pretrained": "none"}} if clip else None
        objective = create_objective(objective_name, options)
        attach_network(objective, model)
        tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=args.lr_lora))
        if mode == "random":
            sampler = data.sampler("all", args.batch_size)
            out[f"{tag}:stage2:{mode}"] = _finetune_phases(
                tuner,
                objective,
                lambda i: next(sampler),
                lambda i, b: forward_padded(model, b),
                args.profile_steps,
            )
            continue
        if mode == "fixed+cache":
            remember_inputs(objective, batches)
        prefix = PrefixCache(model, batches)
        if mode == "fixed":
            prefix._disable("benchmark: cache off on purpose")
        n = len(batches)  # the first epoch records the caches: warm-up, then the steady state is timed
        out[f"{tag}:stage2:{mode}"] = _finetune_phases(
            tuner, objective, lambda i: batches[i % n], lambda i, b: prefix(i % n), args.profile_steps, n
        )
        out[f"{tag}:stage2:{mode}"]["cache"] = prefix.summary()
    return out


def _rehaze_parts(model, objective, data, args) -> dict[str, float]:
    """Inside the offline objective: airlight estimate (depends on the crop only) vs the second pass."""
    from dehazekit.objectives.rehaze import estimate_airlight

    clock, sampler = _Clock(), data.sampler("all", args.batch_size)
    for _ in range(args.profile_steps + 1):
        hazy = next(sampler)
        clock("airlight", estimate_airlight, hazy)
        with torch.no_grad():
            target = forward_padded(model, hazy).clamp(0, 1)
        rehazed = clock("rehaze_total", objective.rehaze, hazy, target)
        clock("second_forward", forward_padded, model, rehazed)
    return clock.medians()


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
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(True)
    objective = create_objective(args.objective)
    attach_network(objective, model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr_full)
    sampler = data.sampler("all", args.batch_size)

    def step() -> None:
        hazy = next(sampler)
        loss = objective(hazy, forward_padded(model, hazy))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step
