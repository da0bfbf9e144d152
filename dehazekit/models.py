"""Save and rebuild plain (merged) models: ``model.safetensors`` + ``model.json`` (ModelMeta).

A saved model rebuilds without code defaults: model.json names the backbone and its constructor
arguments, model.safetensors is the backbone's plain state_dict (no LoRA, no gates).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from dehazekit.runtimes.errors import ConfigError, ModelFileError
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)

MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"


def default_model_path() -> Path:
    """Folder of the bundled default model (dehazekit/assets/default/), the one `run` uses.

    ``catalog.bundled_model_dir("synthetic")`` is the other bundled model, the one adapt starts from.
    """
    from dehazekit.catalog import WEIGHTS_DEFAULT, bundled_model_dir

    return bundled_model_dir(WEIGHTS_DEFAULT)


def meta_for(model: nn.Module, **fields: Any) -> ModelMeta:
    """ModelMeta describing ``model`` (backbone, config, pad multiple, min size) plus ``fields``."""
    from dehazekit.backbones import spec_of

    spec = spec_of(model)
    base: dict[str, Any] = {
        "backbone": spec.name,
        "config": dict(getattr(model, "backbone_config", {}) or {}),
        "pad_multiple": spec.pad_multiple,
        "min_size": spec.min_size,
    }
    base.update(fields)
    try:
        return ModelMeta(**base)
    except TypeError as exc:
        raise ConfigError.build("unknown ModelMeta field", got=sorted(fields), fix=str(exc)) from exc


def save_model(model: nn.Module, out_dir: str | Path, **meta_fields: Any) -> Path:
    """Write ``out_dir/model.safetensors`` (plain state_dict) and ``out_dir/model.json``; atomic.

    ``meta_fields`` go into ModelMeta (e.g. adapter_digest, selected_blocks, extra). Returns the
    path of model.safetensors. A model that still holds LoRA layers is refused: merge it first.
    """
    from safetensors.torch import save

    from dehazekit.lora import has_lora
    from dehazekit.runtimes.io_utils import atomic_write_bytes

    if has_lora(model):
        raise ConfigError.build(
            "model still holds LoRA layers or gates",
            got="unmerged adapter",
            fix="call dehazekit.lora.merge_lora(model) before save_model",
        )
    meta = meta_for(model, **meta_fields)
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = atomic_write_bytes(out_dir / MODEL_WEIGHTS, save(state, metadata={"format": "dehazekit-model"}))
    meta.save(out_dir / MODEL_META)
    return path


def _resolve(path: Path) -> tuple[Path, Path | None]:
    """(weights file, model.json or None) for a folder, a .safetensors with a sidecar, or a checkpoint."""
    if path.is_dir():
        weights, meta = path / MODEL_WEIGHTS, path / MODEL_META
        if weights.is_file() and meta.is_file():
            return weights, meta
        if (path / "adapter.json").is_file():
            raise ModelFileError.build(
                "folder holds an unmerged adapter but no merged model",
                got=str(path),
                expected=f"{MODEL_WEIGHTS} + {MODEL_META}",
                fix="load the backbone, apply dehazekit.lora.load_adapter and merge_lora, then save_model",
            )
        raise ModelFileError.build(
            "model folder incomplete",
            got=sorted(p.name for p in path.iterdir()),
            expected=f"{MODEL_WEIGHTS} and {MODEL_META}",
        )
    if not path.is_file():
        raise ModelFileError.build("model file not found", got=str(path))
    for sidecar in (path.with_suffix(".json"), path.parent / MODEL_META):
        if path.suffix == ".safetensors" and sidecar.is_file():
            return path, sidecar
    return path, None


def load_model(path: str | Path | None = None, backbone: str | None = None, **overrides: Any) -> nn.Module:
    """Rebuild a model in eval mode.

    ``path``: a model folder (model.safetensors + model.json, e.g. an adapt output folder), a
    model.safetensors with its model.json beside it, or an official checkpoint together with
    ``backbone=NAME``; None loads the packaged default model. ``overrides`` are constructor
    arguments that replace the saved config (or configure the official checkpoint's backbone).
    The returned module carries ``dehazekit_meta`` (the ModelMeta, or None for raw checkpoints).
    """
    from dehazekit.backbones import create_backbone, load_weights

    if path is None:
        path = default_model_path()
        if not (path / MODEL_WEIGHTS).is_file():
            raise ModelFileError.build(
                "no default model is installed",
                got=str(path),
                fix="pass a model path, or reinstall dehazekit with its assets",
            )
    weights, meta_file = _resolve(Path(path))
    meta = ModelMeta.load(meta_file) if meta_file is not None else None
    if meta is None:
        if backbone is None:
            raise ModelFileError.build(
                "cannot tell which backbone this checkpoint is",
                got=str(weights),
                fix="pass backbone=NAME (e.g. load_model(path, backbone='dea'))",
            )
        model = create_backbone(backbone, **overrides)
    else:
        if backbone is not None and backbone != meta.backbone:
            raise ConfigError.build(
                "backbone does not match model.json",
                got=backbone,
                expected=meta.backbone,
                fix="omit backbone= for saved models",
            )
        model = create_backbone(meta.backbone, **{**meta.config, **overrides})
    load_weights(model, weights, strict=True)
    model.dehazekit_meta = meta
    log.info("loaded %s from %s", getattr(model, "backbone_name", "?"), weights)
    return model.eval()
