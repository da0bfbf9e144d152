"""Adapter files: ``adapter.json`` (what it is, how to rebuild it) + ``adapter.safetensors`` (tensors).

The safetensors file holds each LoRA layer's ``lora_A``/``lora_B`` and each block's gate state under
the model's own state_dict names. Its sha256 is the adapter digest recorded in ModelMeta.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dehazekit.lora.gates import GATE_ATTR
from dehazekit.lora.inject import gate_values, gates_of, inject_lora, lora_blocks, lora_layers, remove_gates
from dehazekit.runtimes.errors import ConfigError, ModelFileError
from dehazekit.runtimes.io_utils import atomic_write_bytes, atomic_write_text

ADAPTER_JSON = "adapter.json"
ADAPTER_TENSORS = "adapter.safetensors"
FORMAT_VERSION = 1
_RESERVED = {
    "format_version",
    "backbone",
    "backbone_config",
    "rank",
    "lora_alpha",
    "blocks",
    "gated",
    "gates",
    "digest",
}


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """LoRA factors and gate state of ``model`` under their state_dict names (contiguous CPU copies)."""
    state = model.state_dict()
    keep = {
        k: v for k, v in state.items() if k.endswith((".lora_A", ".lora_B")) or f".{GATE_ATTR}." in f".{k}"
    }
    return {k: v.detach().cpu().contiguous().clone() for k, v in keep.items()}


def _lora_hparams(model: nn.Module) -> tuple[int, float]:
    layers = [layer for _, layer in lora_layers(model)]
    if not layers:
        raise ConfigError.build("model has no LoRA layers to save", fix="call inject_lora first")
    pairs = {(layer.rank, layer.lora_alpha) for layer in layers}
    if len(pairs) > 1:
        raise ConfigError.build("adapter layers disagree on rank/lora_alpha", got=sorted(pairs))
    return pairs.pop()


def save_adapter(model: nn.Module, out_dir: str | Path, info: Mapping[str, Any] | None = None) -> Path:
    """Write adapter.safetensors then adapter.json (both atomic) into ``out_dir``; returns ``out_dir``.

    ``info`` adds caller facts (objective, prompts, data_digest, seed, ...; anything JSON-able). A
    ``gates`` entry in ``info`` (e.g. the searched values of ALL candidate blocks) is kept, updated
    with the gates still present in the model.
    """
    from safetensors.torch import save

    info = dict(info or {})
    out_dir = Path(out_dir)
    rank, lora_alpha = _lora_hparams(model)
    blob = save(adapter_tensors(model), metadata={"format": "dehazekit-adapter"})
    atomic_write_bytes(out_dir / ADAPTER_TENSORS, blob)
    gates = {**dict(info.pop("gates", {}) or {}), **gate_values(model)}
    model_gates = gates_of(model)
    record: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "backbone": getattr(model, "backbone_name", None),
        "backbone_config": dict(getattr(model, "backbone_config", {}) or {}),
        "rank": rank,
        "lora_alpha": lora_alpha,
        "blocks": lora_blocks(model),
        "gated": {b: not bool(g.ungated) for b, g in model_gates.items()},
        "gates": gates,
        "digest": hashlib.sha256(blob).hexdigest(),
    }
    for key in ("objective", "prompts", "data_digest", "seed"):
        record[key] = info.pop(key, None)
    clash = sorted(set(info) & _RESERVED)
    if clash:
        raise ConfigError.build("adapter info overrides reserved keys", got=clash)
    record.update(info)
    try:
        text = json.dumps(record, indent=2, sort_keys=True)
    except TypeError as exc:
        raise ConfigError.build("adapter info is not JSON-serialisable", got=str(exc)) from exc
    atomic_write_text(out_dir / ADAPTER_JSON, text + "\n")
    return out_dir


def adapter_digest(path: str | Path) -> str:
    """sha256 of adapter.safetensors (``path`` = the adapter folder or the file itself)."""
    path = Path(path)
    file = path / ADAPTER_TENSORS if path.is_dir() else path
    if not file.is_file():
        raise ModelFileError.build("adapter tensors not found", got=str(file))
    return hashlib.sha256(file.read_bytes()).hexdigest()


def read_adapter_info(path: str | Path) -> dict[str, Any]:
    """The parsed adapter.json of an adapter folder (or of the json file itself)."""
    path = Path(path)
    file = path / ADAPTER_JSON if path.is_dir() else path
    if not file.is_file():
        raise ModelFileError.build(
            "adapter.json not found",
            got=str(file),
            fix="point at the folder written by `dehazekit adapt` or save_adapter",
        )
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFileError.build("adapter.json is not valid JSON", got=f"{file}: {exc}") from exc
    missing = [k for k in ("rank", "lora_alpha", "blocks") if k not in info]
    if not isinstance(info, dict) or missing:
        raise ModelFileError.build(
            "adapter.json lacks required keys", got=missing, expected="rank, lora_alpha, blocks"
        )
    return info


def load_adapter(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Inject LoRA into the adapter's blocks of ``model`` and load its tensors (in place; returns model).

    The backbone name must match the adapter's. Gate logits and ungated flags come from the file.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    info = read_adapter_info(folder)
    name = getattr(model, "backbone_name", None)
    if info.get("backbone") and name and info["backbone"] != name:
        raise ConfigError.build(
            "adapter was made for another backbone",
            got=name,
            expected=info["backbone"],
            fix=f"load it into create_backbone({info['backbone']!r})",
        )
    tensor_file = folder / ADAPTER_TENSORS
    if not tensor_file.is_file():
        raise ModelFileError.build("adapter tensors not found", got=str(tensor_file))
    if info.get("digest") and adapter_digest(tensor_file) != info["digest"]:
        raise ModelFileError.build(
            "adapter.safetensors does not match adapter.json's digest",
            got=str(tensor_file),
            fix="the files come from different runs; re-save them",
        )
    inject_lora(model, info["blocks"], rank=int(info["rank"]), lora_alpha=float(info["lora_alpha"]))
    gateless = [b for b in info["blocks"] if b not in (info.get("gated") or {})]
    if gateless:  # saved after remove_gates: those blocks run ungated and store no gate tensors
        remove_gates(model, gateless)
    tensors = load_file(str(tensor_file))
    own = adapter_tensors(model)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    bad_shape = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if strict and (missing or unexpected or bad_shape):
        raise ModelFileError.build(
            "adapter tensors do not fit the model",
            got=f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {bad_shape[:5]}",
        )
    model.load_state_dict({k: v for k, v in tensors.items() if k in own and k not in bad_shape}, strict=False)
    return model
