"""Read official checkpoints safely and load them strictly, with mismatch reports a user can act on."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from dehazekit.runtimes.errors import CheckpointMismatchError, ModelFileError

log = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".pkl", ".pk", ".tar", ".ckpt")
WRAPPER_KEYS = ("state_dict", "model", "params", "params_ema", "net", "model_state_dict")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {key: tensor} dict, unwrapping common containers.

    .safetensors is read directly; torch pickles use ``weights_only=True`` and, when the file holds a
    whole pickled module (MSBDN's releases do), a restricted unpickler that rebuilds tensors only and
    never runs code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError.build("checkpoint not found", got=str(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            raw: Any = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError.build("not a readable safetensors file", got=f"{path}: {exc}") from exc
    elif path.suffix in TORCH_SUFFIXES:
        raw = _read_torch_pickle(path)
    else:
        raise ModelFileError.build(
            "unsupported checkpoint suffix", got=path.suffix, expected=[".safetensors", *TORCH_SUFFIXES]
        )
    return unwrap_state_dict(raw, source=str(path))


def _read_torch_pickle(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        log.info("weights_only load refused %s (%s); using the tensor-only unpickler", path, exc)
    except Exception as exc:
        raise ModelFileError.build("not a readable torch checkpoint", got=f"{path}: {exc}") from exc
    return load_tensors_only(path)


def load_tensors_only(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a torch checkpoint read without executing anything from it (see safe_unpickle)."""
    from dehazekit.backbones.safe_unpickle import unpickle_tensors_only

    try:
        return unwrap_state_dict(unpickle_tensors_only(path), source=str(path))
    except ModelFileError as exc:
        if "no tensors" not in str(exc) and "no state_dict" not in str(exc):
            raise
        raise ModelFileError.build(
            "no tensors found in pickled checkpoint", got=str(path), fix="the file holds no model weights"
        ) from exc


def unwrap_state_dict(raw: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Strip containers ({'state_dict': ...}, {'model': ...}, {'params': ...}) and 'module.' prefixes."""
    obj = raw
    for _ in range(4):  # nested wrappers like {'model': {'state_dict': ...}} exist in the wild
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], (Mapping, nn.Module))), None
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ModelFileError.build(
            "checkpoint holds no state_dict",
            got=f"{source}: {type(raw).__name__}",
            expected="a state_dict or a dict wrapping one under " + "/".join(WRAPPER_KEYS),
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelFileError.build("checkpoint holds no tensors", got=source)
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def describe_mismatch(
    model_sd: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor], limit: int = 8
) -> str:
    missing = [k for k in model_sd if k not in ckpt]
    unexpected = [k for k in ckpt if k not in model_sd]
    shapes = [
        f"{k}: checkpoint {tuple(ckpt[k].shape)} vs model {tuple(model_sd[k].shape)}"
        for k in model_sd
        if k in ckpt and tuple(ckpt[k].shape) != tuple(model_sd[k].shape)
    ]
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{title} {len(items)}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_weights(
    model: nn.Module, path_or_state: str | Path | Mapping[str, torch.Tensor], strict: bool = True
) -> nn.Module:
    """Load a checkpoint (path or state_dict) into ``model``; strict by default.

    A mismatch raises CheckpointMismatchError listing missing/unexpected keys and shape differences.
    """
    if isinstance(path_or_state, Mapping):
        state = unwrap_state_dict(path_or_state)
        source = "state_dict"
    else:
        state = read_state_dict(path_or_state)
        source = str(path_or_state)
    # Models that dropped never-used modules (DeHamer prune_unused) say which checkpoint keys to ignore.
    filter_checkpoint = getattr(model, "filter_checkpoint", None)
    if callable(filter_checkpoint):
        state = filter_checkpoint(state)
    model_sd = model.state_dict()
    report = describe_mismatch(model_sd, state)
    shape_bad = any(k in state and tuple(state[k].shape) != tuple(v.shape) for k, v in model_sd.items())
    if report and (strict or shape_bad):
        name = getattr(model, "backbone_name", type(model).__name__)
        raise CheckpointMismatchError.build(
            f"checkpoint does not match backbone {name}",
            got=f"{source}: {report}",
            fix="check --backbone and its size/variant, or pass strict=False to load what matches",
        )
    model.load_state_dict({k: v for k, v in state.items() if k in model_sd}, strict=False)
    if report:
        log.warning("non-strict load of %s: %s", source, report)
    return model
