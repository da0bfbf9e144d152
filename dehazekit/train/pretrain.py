"""Supervised pretraining on synthetic haze: L1 (+ optional 1 - SSIM, low-pass colour L1), Adam, cosine decay.

Reads top to bottom like nanoGPT's train.py: build data, model and optimiser; optionally resume from
``checkpoint.pt``; then loop: sample a batch, step (plain or BILD-reweighted), validate now and then on
a fixed held-out synthetic set, keep the best weights as ``model.safetensors`` + ``model.json``,
checkpoint atomically. A checkpoint holds model, optimiser, scheduler, reweighter, RNG states and
history, so a resumed run continues the same sample stream.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.io_utils import atomic_write_text
from dehazekit.runtimes.progress import StageProgress
from dehazekit.train.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from dehazekit.train.realhaze import RealHazeTerm
from dehazekit.train.stream import StepBudget, auto_workers, worker_batches

log = logging.getLogger(__name__)
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class PretrainConfig:
    clear: Path
    backbone: str
    out: Path = Path("runs/pretrain")
    presets: str = "homogeneous"
    depth: Path | None = None
    steps: int = 2000
    crop: int = 256
    batch_size: int = 4
    lr: float = 5e-4
    ssim_weight: float = 0.0
    colour_weight: float = 0.0  # L1 of 8x8-pooled images: brightness and colour cast
    init: Path | None = None  # start from this model folder's weights (recalibration)
    real_images: Path | None = None  # unlabeled real hazy photos: adds the offline objective (train.realhaze)
    real_weight: float = 1.0
    rotate: bool = False  # random quarter turns of each training pair
    reweight: str = "none"
    resume: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    val_count: int = 16
    val_size: int = 128
    val_every: int = 200
    ckpt_every: int = 100
    max_side: int = 512
    bild_lr: float = 1e-3
    bild_entropy: float = 1e-3
    progress: bool = True  # False: no per-step progress at all (validation lines still go to logging)
    stop_after: int | None = None  # end this session at this step (checkpointed); --resume continues
    device: str = "auto"  # auto = CUDA when present (dehazekit.accel)
    precision: str = "auto"  # auto = bf16 autocast on CUDA GPUs that support it, else fp32
    workers: int | None = None  # synthesis processes; None = auto (dehazekit.train.stream)
    time_budget_s: float | str | None = None  # fit the step count (and the cosine) to this wall time

    def __post_init__(self) -> None:
        from dehazekit.data.datasets import parse_presets

        self.clear, self.out = Path(self.clear), Path(self.out)
        self.depth = Path(self.depth) if self.depth else None
        self.init = Path(self.init) if self.init else None
        self.real_images = Path(self.real_images) if self.real_images else None
        self.presets = "+".join(parse_presets(self.presets))
        for name in (
            "steps",
            "crop",
            "batch_size",
            "val_count",
            "val_size",
            "val_every",
            "ckpt_every",
            "max_side",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError.build(f"--{name.replace('_', '-')} must be >= 1", got=getattr(self, name))
        if not (0 < self.lr < 1):
            raise ConfigError.build("--lr out of range", got=self.lr, expected="0 < lr < 1")
        if self.reweight not in ("none", "bild"):
            raise ConfigError.build("unknown --reweight", got=self.reweight, expected="none or bild")
        for name in ("ssim_weight", "colour_weight"):
            if getattr(self, name) < 0:
                raise ConfigError.build(f"--{name.replace('_', '-')} must be >= 0", got=getattr(self, name))
        if self.workers is not None and self.workers < 0:
            raise ConfigError.build("--workers must be >= 0", got=self.workers)
        if self.time_budget_s is not None:
            from dehazekit.runtimes.progress import parse_time_budget

            self.time_budget_s = parse_time_budget(self.time_budget_s)
        if self.real_images is not None and (self.init is None or self.reweight != "none"):
            raise ConfigError.build(
                "--real-images needs --init and no --reweight",
                got={"init": str(self.init), "reweight": self.reweight},
                fix="the real-haze label is the --init model's output; pass --init MODEL_DIR",
            )
        if not self.real_weight > 0:
            raise ConfigError.build("--real-weight must be > 0", got=self.real_weight)
        if self.crop < 16:
            raise ConfigError.build("--crop too small", got=self.crop, expected=">= 16")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class PretrainResult:
    out: Path
    step: int
    best: dict[str, Any]
    hazy_baseline: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def per_patch_loss(
    pred: torch.Tensor, target: torch.Tensor, ssim_weight: float, colour_weight: float = 0.0
) -> torch.Tensor:
    """(B,) L1 (+ ssim_weight * (1 - SSIM) + colour_weight * L1 of 8x8 means) per patch.

    The pooled term weighs brightness and colour cast (what a viewer sees first) on top of the
    per-pixel error, which on its own lets a global shift cost no more than a little texture.
    """
    loss = (pred - target).abs().mean(dim=(1, 2, 3))
    if colour_weight > 0:
        pooled = torch.nn.functional.avg_pool2d(pred - target, 8, ceil_mode=True)
        loss = loss + colour_weight * pooled.abs().mean(dim=(1, 2, 3))
    if ssim_weight > 0:
        from dehazekit.metrics.psnr_ssim import ssim_torch

        loss = loss + ssim_weight * (1 - ssim_torch(pred.clamp(0, 1), target))
    return loss


def _val_tensors(cfg: PretrainConfig, files: list[Path]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from dehazekit.data.datasets import fixed_pairs

    sets = {}
    for i, preset in enumerate(cfg.presets.split("+")):
        pairs = fixed_pairs(
            files, preset, cfg.val_count, seed=cfg.seed + 1000 + i, size=cfg.val_size, depth_dir=cfg.depth
        )
        side = min(min(p[1].shape[:2]) for p in pairs)  # all centre crops share one square size
        hazy = (
            torch.from_numpy(np.stack([p[1][:side, :side] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        )
        clear = (
            torch.from_numpy(np.stack([p[2][:side, :side] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        )
        sets[preset] = (hazy, clear)
    return sets


@torch.no_grad()
def evaluate_sets(
    model: nn.Module | None, sets: dict[str, tuple[torch.Tensor, torch.Tensor]], chunk: int = 8
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM per preset; ``model=None`` scores the hazy input itself (the baseline)."""
    from dehazekit.backbones import forward_padded
    from dehazekit.metrics.psnr_ssim import psnr_torch, ssim_torch

    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    out = {}
    for preset, (hazy, clear) in sets.items():
        psnrs, ssims = [], []
        for i in range(0, len(hazy), chunk):
            x, y = hazy[i : i + chunk], clear[i : i + chunk]
            pred = x if model is None else forward_padded(model, x).clamp(0, 1)
            psnrs.append(psnr_torch(pred, y))
            ssims.append(ssim_torch(pred, y))
        out[preset] = {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}
    if model is not None and was_training:
        model.train()
    return out


def _mean_psnr(scores: dict[str, dict[str, float]]) -> float:
    return float(np.mean([s["psnr"] for s in scores.values()]))


def _cosine(total: int):
    # Cosine from 1 to 0.02 of the base lr; a floor keeps the last steps useful.
    return lambda step: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def _accelerator(cfg: PretrainConfig):
    from dehazekit.accel import Accelerator

    accel = Accelerator.resolve(cfg.device, cfg.precision)
    if accel.device.type != "cpu" and cfg.reweight == "bild":
        raise ConfigError.build(
            "--reweight bild runs on the CPU only",
            got=f"--device {accel.device}",
            fix="use --device cpu with --reweight bild, or --reweight none on the GPU",
        )
    log.info("pretraining on %s", accel.describe())
    return accel


def _build(cfg: PretrainConfig):
    from dehazekit.backbones import create_backbone
    from dehazekit.data.datasets import PairedHaze, split_holdout
    from dehazekit.data.images import list_images

    files = list_images(cfg.clear, "clear image folder")
    train_files, val_files = split_holdout(files, cfg.val_fraction)
    presets = cfg.presets.split("+")
    data = PairedHaze(train_files, presets, cfg.crop, cfg.max_side, cfg.depth, rotate=cfg.rotate)
    model = create_backbone(cfg.backbone)
    if cfg.init is not None:
        _load_init(model, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(cfg.steps))
    reweighter = None
    if cfg.reweight == "bild":
        from dehazekit.train.bild import BildConfig, BildReweighter

        outer = PairedHaze(val_files, presets, cfg.crop, cfg.max_side, cfg.depth)
        reweighter = BildReweighter(
            BildConfig(lr=cfg.bild_lr, entropy_weight=cfg.bild_entropy),
            outer,
            cfg.batch_size,
            seed=cfg.seed + 7,
        )
    return data, val_files, model, opt, sched, reweighter


def _load_init(model: nn.Module, cfg: PretrainConfig) -> None:
    from dehazekit.models import load_model

    start = load_model(cfg.init)
    if type(start) is not type(model) or start.state_dict().keys() != model.state_dict().keys():
        raise ConfigError.build(
            "--init model does not match --backbone",
            got=str(cfg.init),
            expected=f"a {cfg.backbone} model folder",
        )
    model.load_state_dict(start.state_dict())
    log.info("initialised from %s", cfg.init)


def _batch_source(cfg: PretrainConfig, data, rng, step: int, device: torch.device):
    """A function returning the next (hazy, clear) batch: in process, or from synthesis workers."""
    workers = auto_workers(device) if cfg.workers is None else cfg.workers
    if workers == 0 or cfg.reweight == "bild":
        return lambda: data.batch(rng, cfg.batch_size)[:2]
    log.info("synthesising batches in %d worker processes", workers)
    stream = worker_batches(data, cfg.batch_size, cfg.seed, step, workers, pin=device.type == "cuda")
    return lambda: next(stream)


def _train_step(
    cfg: PretrainConfig,
    model: nn.Module,
    opt,
    reweighter,
    hazy: torch.Tensor,
    clear: torch.Tensor,
    extra: Callable[[], torch.Tensor] | None = None,
) -> float:
    """One optimiser step (plain or BILD-reweighted, plus ``extra()``: the real-haze term);
    returns the (weighted) training loss."""
    if reweighter is not None:
        return reweighter.step(
            model, opt, hazy, clear, lambda p, t: per_patch_loss(p, t, cfg.ssim_weight, cfg.colour_weight)
        )
    loss = per_patch_loss(model(hazy), clear, cfg.ssim_weight, cfg.colour_weight).mean()
    if extra is not None:
        loss = loss + extra()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def pretrain(cfg: PretrainConfig, progress: ProgressFn | None = None) -> PretrainResult:
    """Run (or resume) pretraining; returns the best validation scores and where the model is.

    ``progress`` receives one dict per step: stage "pretrain", step, total, step_s, loss, lr; by
    default steady progress lines (step, rate, ETA, loss) go to logging.
    """
    from dehazekit.models import save_model

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    accel = _accelerator(cfg)
    data, val_files, model, opt, sched, reweighter = _build(cfg)
    real = None if cfg.real_images is None else RealHazeTerm(cfg, model)
    accel.attach(model)
    val_sets = {
        k: (accel.to_device(h), accel.to_device(c)) for k, (h, c) in _val_tensors(cfg, val_files).items()
    }
    baseline = evaluate_sets(None, val_sets)
    rng = np.random.default_rng(cfg.seed)
    ckpt_path = cfg.out / "checkpoint.pt"
    step, best, history, wall, total = 0, {"psnr": -math.inf}, [], 0.0, cfg.steps
    if cfg.resume and ckpt_path.is_file():
        step, best, history, wall, fitted = restore_checkpoint(
            load_checkpoint(ckpt_path), cfg, model, opt, sched, rng, reweighter
        )
        # --steps sets the length of a resumed run (it may extend it); a budgeted run resumed with
        # --time-budget keeps the step count its budget fitted.
        total = fitted if cfg.time_budget_s else cfg.steps
        sched.lr_lambdas[0] = _cosine(total)
        log.info("resumed from %s at step %d of %d", ckpt_path, step, total)
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    model.train()
    t0 = time.perf_counter() - wall
    if progress is None and cfg.progress:
        progress = StageProgress(metrics=("loss", "lr"))
    next_batch = _batch_source(cfg, data, rng, step, accel.device)
    budget = StepBudget(cfg.time_budget_s, cfg.steps, started) if cfg.time_budget_s and step == 0 else None
    while step < (total if cfg.stop_after is None else min(total, cfg.stop_after)):
        start = time.perf_counter()
        hazy, clear = next_batch()
        extra = (
            None if real is None else real.weighted_loss(accel.to_device(real.batch(step, cfg.batch_size)))
        )
        loss_value = _train_step(
            cfg, model, opt, reweighter, accel.to_device(hazy), accel.to_device(clear), extra
        )
        sched.step()
        step += 1
        fitted = budget.after_step(step) if budget is not None else None
        if fitted is not None:
            total = fitted
            sched.lr_lambdas[0] = _cosine(total)
        if progress is not None:
            progress(
                {
                    "stage": "pretrain",
                    "step": step,
                    "total": total,
                    "step_s": time.perf_counter() - start,
                    "loss": loss_value,
                    "lr": float(sched.get_last_lr()[0]),
                }
            )
        if step % cfg.val_every == 0 or step == total:
            scores = evaluate_sets(model, val_sets)
            history.append(
                {"step": step, "loss": loss_value, "val": scores, "wall_s": time.perf_counter() - t0}
            )
            log.info("step %d  val %s", step, _fmt(scores))
            if _mean_psnr(scores) > best["psnr"]:
                best = {"psnr": _mean_psnr(scores), "step": step, "val": scores}
                save_model(model, cfg.out, extra=_provenance(cfg, step, scores, baseline))
        if step % cfg.ckpt_every == 0 or step == total or step == cfg.stop_after:
            save_checkpoint(
                ckpt_path,
                checkpoint_payload(cfg, model, opt, sched, rng, reweighter, step, total, best, history)
                | {"wall_s": time.perf_counter() - t0},
            )
    wall = time.perf_counter() - t0
    result = PretrainResult(cfg.out, step, best, baseline, history, wall)
    atomic_write_text(
        cfg.out / "history.json",
        json.dumps({"best": best, "hazy_input": baseline, "history": history, "wall_s": wall}, indent=2)
        + "\n",
    )
    return result


def _provenance(cfg: PretrainConfig, step: int, scores: dict, baseline: dict) -> dict[str, Any]:
    return {
        "trained_by": "dehazekit pretrain",
        "step": step,
        "presets": cfg.presets,
        "crop": cfg.crop,
        "batch_size": cfg.batch_size,
        "reweight": cfg.reweight,
        "ssim_weight": cfg.ssim_weight,
        "colour_weight": cfg.colour_weight,
        "rotate": cfg.rotate,
        "init": str(cfg.init) if cfg.init else None,
        "real_images": str(cfg.real_images) if cfg.real_images else None,
        "real_weight": cfg.real_weight if cfg.real_images else None,
        "val": scores,
        "val_hazy_input": baseline,
    }


def _fmt(scores: dict[str, dict[str, float]]) -> str:
    return "  ".join(f"{k}: {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in scores.items())
