"""``dehazekit.adapt``: unlabeled real hazy images -> adapter + merged model + report (BiLaLoRA).

Flow (each stage checkpointed atomically so ``resume=True`` continues an interrupted run):
  load backbone (deploy form) and freeze it -> gated LoRA on every candidate block ->
  Stage 1 BilevelSearch (gates on S_alpha, LoRA on S_w) -> top-K blocks by gate ->
  Stage 2 FineTuner (LoRA on the K blocks only, gates fixed) -> adapter files ->
  merge, checked against the unmerged model (atol 1e-5) before model.safetensors is written -> report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dehazekit.accel import Accelerator
from dehazekit.adapt.backbone import candidate_list, load_backbone
from dehazekit.adapt.config import AdaptConfig
from dehazekit.adapt.data import UnpairedHazy
from dehazekit.adapt.distributed import Dist
from dehazekit.adapt.run import ProgressFn, _resume_state, _Run
from dehazekit.catalog import BUNDLED_MODELS, check_bundled_weights
from dehazekit.runtimes.errors import ConfigError, ParityError
from dehazekit.runtimes.progress import StageProgress

log = logging.getLogger(__name__)

MERGE_ATOL = 1e-5


@dataclass
class AdaptResult:
    """What an adaptation produced; ``paths`` maps output names to files under ``out_dir``."""

    out_dir: Path
    backbone: str
    selected_blocks: list[str]
    gates: dict[str, float]
    losses: dict[str, list[dict[str, Any]]]
    timings: dict[str, float]
    paths: dict[str, Path]
    merge_max_abs_diff: float
    data_digest: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    upscaled: list[str] = field(default_factory=list)
    resumed_from: dict[str, Any] | None = None
    guard: dict[str, Any] | None = None  # dehazekit.adapt.guard.Guard.summary(); None when off

    @property
    def recommended(self) -> bool:
        return self.guard is None or bool(self.guard["recommended"])


def _check_k(config: AdaptConfig, count: int) -> None:
    # Fail before any training: K > candidates can never be satisfied.
    if config.top_k is not None and config.top_k > count:
        raise ConfigError.build(
            "--top-k is larger than the number of candidate blocks",
            got=config.top_k,
            expected=f"<= {count}",
            fix=f"use --top-k {count} or fewer",
        )


def _merge_and_save(
    model: nn.Module,
    previews: Tensor,
    out_dir: Path,
    selected: list[str],
    adapter_digest: str,
    config: AdaptConfig,
    recommended: bool = True,
) -> tuple[float, dict[str, Path], Tensor]:
    """Merge LoRA into the weights, check merged == unmerged on the preview crops, then save."""
    from dehazekit.backbones import forward_padded
    from dehazekit.lora import merge_lora
    from dehazekit.models import MODEL_META, save_model

    with torch.no_grad():
        unmerged = forward_padded(model, previews)
        merge_lora(model, safe=True)
        merged = forward_padded(model, previews)
    diff = float((merged - unmerged).abs().max())
    if not diff <= MERGE_ATOL:
        raise ParityError.build(
            "merged model does not reproduce the adapted model",
            got=f"max |diff| {diff:.3g}",
            expected=f"<= {MERGE_ATOL}",
            fix="report this as a bug; the adapter files are kept",
        )
    weights = save_model(
        model,
        out_dir,
        adapter_digest=adapter_digest,
        selected_blocks=list(selected),
        extra={
            "adapted_with": "dehazekit adapt",
            "objective": config.objective,
            "seed": config.seed,
            "recommended": recommended,
        },
    )
    return diff, {"model": weights, "model_json": out_dir / MODEL_META}, merged


def _setup(images: Any, config: AdaptConfig, backbone: nn.Module | None):
    from dehazekit.objectives import attach_network, create_objective

    # The objective first: a missing CLIP download should fail before any image is decoded.
    objective = create_objective(config.objective, config.objective_options())
    held: list[Path] = []
    if config.guard:
        from dehazekit.adapt.guard import split_holdout

        held = split_holdout(images, config.guard_holdout, config.seed)
    data = UnpairedHazy(
        images, size=config.size, seed=config.seed, video_frames=config.video_frames, exclude=held
    )
    model = load_backbone(config, backbone)
    candidates = candidate_list(model, config.candidates)
    _check_k(config, len(candidates))
    objective.eval()
    for param in objective.parameters():
        param.requires_grad_(False)
    attach_network(objective, model)
    return data, model, candidates, objective


def _resolve_config(
    backbone: str | nn.Module | None, config: AdaptConfig | None, overrides: dict
) -> AdaptConfig:
    config = config or AdaptConfig()
    if isinstance(backbone, str):
        overrides = {"backbone": backbone, **overrides}
    elif isinstance(backbone, nn.Module):
        overrides = {"backbone": getattr(backbone, "backbone_name", None), **overrides}
    config = config.replace(**overrides) if overrides else config
    if not config.backbone:
        raise ConfigError.build("no backbone given", fix="pass backbone='dea' (or --backbone NAME)")
    if config.weights in BUNDLED_MODELS:
        check_bundled_weights(str(config.weights), str(config.backbone))
    return config


def adapt(
    images: str | Path | Sequence[str | Path],
    backbone: str | nn.Module | None = None,
    config: AdaptConfig | None = None,
    progress: ProgressFn | None = None,
    **overrides: Any,
) -> AdaptResult:
    """Adapt ``backbone`` to the real hazy ``images`` (folder, list of paths or video file).

    ``backbone``: a registered name (weights from ``config.weights``; "synthetic" and "default" are
    the bundled models, whose backbone must match) or a module built by
    ``create_backbone``/``load_model`` (copied, never modified). ``overrides`` replace config fields.
    ``progress`` receives one dict per step: stage, step, total, step_s (that step's seconds) and its
    losses; by default steady progress lines (step, rate, ETA, loss) go to logging. A run of more than
    100 steps logs its estimated wall time first (measured probe); ``time_budget`` picks the step counts.
    Writes adapter.json/.safetensors, model.safetensors/.json and report/ under ``config.out``.
    Under torchrun, the batch is sharded over the processes (see dehazekit.adapt.distributed).
    """
    from dehazekit.adapt.distributed import check_batch_size, setup, teardown

    config = _resolve_config(backbone, config, overrides)
    dist = setup()  # a single-process run unless started by torchrun
    try:
        check_batch_size(config.batch_size, dist)
        if dist.active and config.time_budget is not None:
            # each rank would probe its own speed and could pick different step counts
            raise ConfigError.build(
                "--time-budget is not supported with several processes",
                got=f"{dist.world} processes",
                fix="set --search-steps/--finetune-steps instead",
            )
        return _adapt(images, backbone, config, progress, dist)
    finally:
        teardown(dist)


def _adapt(
    images: Any,
    backbone: str | nn.Module | None,
    config: AdaptConfig,
    progress: ProgressFn | None,
    dist: Dist,
) -> AdaptResult:
    from dehazekit.adapt.budget import estimate_and_plan, refit_finetune
    from dehazekit.adapt.guard import apply_choice, make_guard
    from dehazekit.bilevel import select_top_k
    from dehazekit.lora import inject_lora, scale_lora

    t0 = time.perf_counter()
    # Seed first: a backbone or CLIP without weights is randomly initialised, and a resumed run must
    # rebuild exactly the same one.
    torch.manual_seed(config.seed)
    module = backbone if isinstance(backbone, nn.Module) else None
    data, model, candidates, objective = _setup(images, config, module)
    previews = data.fixed_crops(config.preview_count)
    guard = make_guard(config, model, data.held_out, previews) if config.guard else None
    with torch.no_grad():
        from dehazekit.backbones import forward_padded

        before = forward_padded(model, previews)
    torch.manual_seed(config.seed)  # LoRA A init: same seed, same run
    gates = inject_lora(model, candidates, rank=config.rank, lora_alpha=config.lora_alpha, gated=True)
    _check_k(config, len(gates))
    accel = Accelerator.resolve(config.device, config.precision)
    log.info("training on %s", accel.describe())
    accel.attach(objective, frozen=True)
    config, estimate = estimate_and_plan(config, model, objective, data, time.perf_counter() - t0, accel)
    accel.attach(model)
    if progress is None:
        progress = StageProgress(metrics=("loss", "lower_loss", "upper_loss"))
    run = _Run(config, data, model, objective, progress, accel, dist)
    run.guard = guard
    state, resumed = _resume_state(run, config)
    load_s = time.perf_counter() - t0
    if state is not None and state["stage"] == "finetune":
        search_gates, selected = dict(state["search_gates"]), list(state["selected"])
    else:
        search_gates = run.search(state)
        selected = select_top_k(search_gates, config.top_k, config.gate_threshold)
        state = None
    log.info("selected blocks: %s", ", ".join(selected))
    if state is None:  # --time-budget: the fine-tune absorbs the search's drift from the probed speed
        run.config = config = refit_finetune(
            config, estimate, run.timings["search"], time.perf_counter() - t0
        )
    run.finetune(selected, search_gates, state)
    accel.detach(run.model)
    apply_choice(run.guard, run.snapshots, run.model, config.out_dir, config.strength, run.dist.is_main)
    scale_lora(run.model, config.strength)  # after the guard: it judged the whole delta
    return _finish(config, data, run, previews, before, search_gates, selected, load_s, t0, resumed)


def _finish(
    config: AdaptConfig,
    data: UnpairedHazy,
    run: _Run,
    previews: Tensor,
    before: Tensor,
    search_gates: dict[str, float],
    selected: list[str],
    load_s: float,
    t0: float,
    resumed: dict | None,
) -> AdaptResult:
    from dehazekit.adapt.report import write_report
    from dehazekit.lora import ADAPTER_JSON, ADAPTER_TENSORS, adapter_digest, save_adapter

    out_dir = config.out_dir
    common = {
        "out_dir": out_dir,
        "backbone": str(config.backbone),
        "selected_blocks": list(selected),
        "gates": dict(search_gates),
        "losses": run.history,
        "data_digest": data.digest,
        "resumed_from": resumed,
    }
    if not run.dist.is_main:  # rank 0 alone writes adapter, model and report
        return AdaptResult(**common, timings=dict(run.timings), paths={}, merge_max_abs_diff=float("nan"))
    t_save = time.perf_counter()
    save_adapter(
        run.model,
        out_dir,
        info={
            "objective": config.objective,
            "prompts": _prompts_record(config),
            "data_digest": data.digest,
            "seed": config.seed,
            "gates": search_gates,
            "selected_order": selected,
            "hypergrad": config.hypergrad,
            "candidates": list(search_gates),
            "strength": config.strength,
        },
    )
    digest = adapter_digest(out_dir)
    guard = None if run.guard is None else run.guard.summary()
    diff, paths, after = _merge_and_save(
        run.model,
        previews,
        out_dir,
        selected,
        digest,
        config,
        recommended=guard is None or guard["recommended"],
    )
    timings = {"load": load_s, **run.timings, "save_merge": time.perf_counter() - t_save}
    paths.update(adapter_json=out_dir / ADAPTER_JSON, adapter_tensors=out_dir / ADAPTER_TENSORS)
    summary = _summary(config, data, run, search_gates, selected, diff, digest, timings, resumed)
    summary["guard"] = guard
    summary["prefix_cache"] = run.cache
    previews_grid = (previews, before, after)
    paths.update(write_report(out_dir, summary, search_gates, selected, run.history, previews_grid))
    timings["total"] = time.perf_counter() - t0
    log.info("adaptation done in %.1f s; outputs in %s", timings["total"], out_dir)
    return AdaptResult(
        **common,
        timings=timings,
        paths=paths,
        merge_max_abs_diff=diff,
        skipped=list(data.report.skipped),
        upscaled=list(data.report.upscaled),
        guard=guard,
    )


def _prompts_record(config: AdaptConfig) -> Any:
    if "h2c" not in config.objective:
        return None
    from dehazekit.objectives.h2c import resolve_prompts

    return [list(p) for p in resolve_prompts(config.prompts)]


def _summary(
    config: AdaptConfig,
    data: UnpairedHazy,
    run: _Run,
    gates: dict[str, float],
    selected: list[str],
    diff: float,
    digest: str,
    timings: dict[str, float],
    resumed: dict | None,
) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "backbone": config.backbone,
        "selected_blocks": selected,
        "gates": gates,
        "timings_s": timings,
        "losses": run.history,
        "merge_max_abs_diff": diff,
        "merge_atol": MERGE_ATOL,
        "adapter_digest": digest,
        "data": {
            "source": data.source,
            "digest": data.digest,
            "images": len(data),
            "split_w": data.names("w"),
            "split_alpha": data.names("alpha"),
            "skipped": data.report.skipped,
            "upscaled": data.report.upscaled,
            "crop_size": config.size,
        },
        "resumed_from": resumed,
    }
