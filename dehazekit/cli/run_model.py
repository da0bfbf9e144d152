"""Which model file `dehazekit run` opens: the fast ONNX path by default, torch as the named fallback.

- ``--model FILE`` (.onnx, .engine, .safetensors, ...): used as given.
- a model folder (or no --model: the bundled default model) with a *verified* ``model.onnx`` beside
  ``model.safetensors``: the ONNX file, run by the torch-free runtime.
- the bundled default model without one: built once as ONNX (export + parity check against PyTorch) into
  the user cache folder, stamped with the SHA-256 of the weights it came from, and reused from then on.
- anything else (or a build that fails): torch, named in the summary line with the reason.

"Verified" means a stamp (``model.onnx.verified.json``) whose SHA-256 values match both files, or a passing
``model.parity.json`` written by ``dehazekit export`` that is newer than the weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHTS, ONNX, STAMP, PARITY = (
    "model.safetensors",
    "model.onnx",
    "model.onnx.verified.json",
    "model.parity.json",
)


@dataclass
class ModelChoice:
    """The file to open and why: ``route`` is 'onnx', 'torch' or 'as given'."""

    path: Path
    route: str
    note: str = ""


def cache_dir() -> Path:
    """$DEHAZEKIT_CACHE, else $XDG_CACHE_HOME/dehazekit, else ~/.cache/dehazekit."""
    if os.environ.get("DEHAZEKIT_CACHE"):
        return Path(os.environ["DEHAZEKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dehazekit"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_onnx(folder: Path, weights: Path | None = None) -> Path | None:
    """``folder/model.onnx`` when it is verified against ``weights`` (default
    ``folder/model.safetensors``)."""
    onnx, weights = folder / ONNX, weights or folder / WEIGHTS
    if not (onnx.is_file() and weights.is_file()):
        return None
    try:
        if (folder / STAMP).is_file():
            stamp = json.loads((folder / STAMP).read_text())
            ok = stamp.get("weights_sha256") == sha256(weights) and stamp.get("onnx_sha256") == sha256(onnx)
            return onnx if ok else None
        if (folder / PARITY).is_file():
            report = json.loads((folder / PARITY).read_text())
            fresh = onnx.stat().st_mtime >= weights.stat().st_mtime
            return (
                onnx if report.get("passed") is True and fresh and report.get("precision") == "fp32" else None
            )
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: its verification record is unreadable (%s)", onnx, exc)
    return None


def cache_target(folder: Path) -> Path:
    """Where the default model's ONNX lives: the user cache, one folder per weights digest."""
    return cache_dir() / "onnx" / sha256(folder / WEIGHTS)[:16]


def stamp_verified(target: Path, weights: Path) -> None:
    """Record that ``target/model.onnx`` passed parity against ``weights`` (what `run` checks)."""
    from dehazekit.runtimes.io_utils import atomic_write_text

    stamp = {
        "weights": str(weights),
        "weights_sha256": sha256(weights),
        "onnx_sha256": sha256(target / ONNX),
        "parity_passed": True,
    }
    atomic_write_text(target / STAMP, json.dumps(stamp, indent=2) + "\n")


def build_cached_onnx(folder: Path) -> Path:
    """Export ``folder``'s model to ONNX once, check parity against PyTorch, cache it by weights digest."""
    from dehazekit.exporters import export

    weights = folder / WEIGHTS
    target = cache_target(folder)
    cached = verified_onnx(target, weights)
    if cached is not None:
        return cached
    log.info("building the fast ONNX model for %s once (cached in %s)", folder, target)
    # the same verify-then-keep gate as `dehazekit export`: a model that fails parity is never cached
    export(folder, "onnx", out=target / ONNX, progress=lambda event: log.debug("%s", event))
    stamp_verified(target, weights)
    return target / ONNX


def choose_model(model: Path | None, default_folder: Path | None) -> ModelChoice:
    """Resolve ``--model`` (None: ``default_folder``) to the file `run` opens, preferring ONNX."""
    folder = model if model is not None and model.is_dir() else None
    if model is not None and folder is None:
        return ModelChoice(model, "as given")
    folder = folder or default_folder
    assert folder is not None  # the caller raises a ConfigError when there is no default model
    onnx = verified_onnx(folder)
    if onnx is not None:
        return ModelChoice(onnx, "onnx", f"verified {onnx.name} in {folder}")
    if model is not None:
        return ModelChoice(
            folder,
            "torch",
            f"torch fallback: {folder} holds no verified {ONNX} "
            f"(create one with `dehazekit export {folder}`)",
        )
    try:
        path = build_cached_onnx(folder)
    except Exception as exc:  # noqa: BLE001 - any build failure falls back to torch, with the reason shown
        log.warning("could not build the ONNX model (%s); running on torch", exc)
        return ModelChoice(folder, "torch", f"torch fallback: ONNX build failed ({type(exc).__name__})")
    return ModelChoice(path, "onnx", f"bundled model, cached ONNX {path}")
