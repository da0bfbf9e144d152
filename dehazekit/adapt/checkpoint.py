"""Atomic, self-describing checkpoints of an adaptation run (``OUT/checkpoint/state.pt``).

A checkpoint holds the stage ('search' or 'finetune'), the step, the optimiser state of that stage
(LoRA weights, gate logits, Adam moments), the samplers' and torch's RNG states, the losses so far,
the config fingerprint and the data digest. Resuming with another config or other data is refused,
since the result would silently differ from both runs.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from dehazekit.runtimes.errors import CheckpointMismatchError, ModelFileError
from dehazekit.runtimes.io_utils import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
FORMAT_VERSION = 1


def checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / CHECKPOINT_FILE


def save_checkpoint(out_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically; a crash mid-write leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    path = atomic_write_bytes(checkpoint_path(out_dir), buffer.getvalue())
    log.debug("checkpoint: stage %s step %s -> %s", state.get("stage"), state.get("step"), path)
    return path


def load_checkpoint(out_dir: str | Path, fingerprint: dict[str, Any], data_digest: str) -> dict[str, Any]:
    """Read the run's checkpoint and check it belongs to this config and data."""
    path = checkpoint_path(out_dir)
    if not path.is_file():
        raise ModelFileError.build(
            "no checkpoint to resume from",
            got=str(path),
            fix="run without --resume first (checkpoints need --checkpoint-every > 0)",
        )
    try:
        # weights_only: the file holds tensors, numbers, strings and containers only; refuse anything else
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError.build(
            "checkpoint is unreadable", got=f"{path}: {exc}", fix="delete it and start again without --resume"
        ) from exc
    if state.get("format_version") != FORMAT_VERSION:
        raise ModelFileError.build(
            "checkpoint format not supported", got=state.get("format_version"), expected=FORMAT_VERSION
        )
    saved = state.get("fingerprint", {})
    changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if changed:
        raise CheckpointMismatchError.build(
            "the checkpoint was written with other settings",
            got={k: fingerprint.get(k) for k in changed},
            expected={k: saved.get(k) for k in changed},
            fix="resume with the original options or use another --out",
        )
    if state.get("data_digest") != data_digest:
        raise CheckpointMismatchError.build(
            "the images changed since the checkpoint",
            got=data_digest[:12],
            expected=str(state.get("data_digest"))[:12],
            fix="resume with the same --images or use another --out",
        )
    return state


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
