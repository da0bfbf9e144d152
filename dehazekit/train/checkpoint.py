"""Training checkpoints of ``dehazekit pretrain``: model, optimiser, scheduler, reweighter, RNG states and
history in one atomically written file, so a resumed run continues the same sample stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dehazekit.runtimes.errors import ConfigError, ModelFileError
from dehazekit.runtimes.io_utils import atomic_path


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/foreign files
        raise ModelFileError.build(
            "cannot read training checkpoint", got=f"{path}: {exc}", fix="delete it or run without --resume"
        ) from exc


def restore_checkpoint(ck: dict[str, Any], cfg: Any, model: nn.Module, opt, sched, rng, reweighter):
    """Load a checkpoint's states in place; returns (step, best, history, wall_s)."""
    if ck["config"]["backbone"] != cfg.backbone:
        raise ConfigError.build(
            "--resume with a different backbone",
            got=cfg.backbone,
            expected=ck["config"]["backbone"],
            fix="use another --out",
        )
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    rng.bit_generator.state = ck["rng"]
    torch.set_rng_state(ck["torch_rng"])
    if reweighter is not None and ck.get("reweighter"):
        reweighter.load_state_dict(ck["reweighter"])
    return ck["step"], ck["best"], ck["history"], ck.get("wall_s", 0.0), ck.get("total", cfg.steps)


def checkpoint_payload(
    cfg: Any, model: nn.Module, opt, sched, rng, reweighter, step: int, total: int, best: dict, history: list
) -> dict[str, Any]:
    """Everything ``restore_checkpoint`` needs (the caller adds ``wall_s``)."""
    return {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "step": step,
        "total": total,
        "best": best,
        "history": history,
        "config": cfg.to_dict(),
        "reweighter": reweighter.state_dict() if reweighter is not None else None,
    }
