"""Write/read a model folder (model.safetensors + model.json) for training outputs.

Uses ``dehazekit.models.save_model``/``load_model`` when that package is present; otherwise writes the
same layout itself (plain backbone state_dict + ``runtimes.meta.ModelMeta``), so pretraining does not
depend on the order in which the packages land.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from runtimes.errors import ModelFileError
from runtimes.meta import ModelMeta


def save_trained(model: nn.Module, out_dir: str | Path, extra: dict[str, Any]) -> Path:
    """Save ``model`` into ``out_dir``; ``extra`` lands in ModelMeta.extra (training provenance)."""
    try:
        from dehazekit.models import save_model
    except ImportError:
        save_model = None
    if save_model is not None:
        return Path(save_model(model, out_dir, extra=extra))
    from safetensors.torch import save_file

    from dehazekit.backbones import spec_of
    from runtimes.io_utils import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    spec = spec_of(model)
    meta = ModelMeta(backbone=model.backbone_name, config=dict(getattr(model, "backbone_config", {}) or {}),
                     pad_multiple=spec.pad_multiple, min_size=spec.min_size, extra=extra)
    meta.save(out / "model.json")
    return out


def load_trained(path: str | Path) -> nn.Module:
    """Load a model folder (or its model.safetensors) in eval mode."""
    try:
        from dehazekit.models import load_model
    except ImportError:
        load_model = None
    if load_model is not None:
        model = load_model(path)
        return model.eval()
    from dehazekit.backbones import create_backbone, load_weights

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / "model.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelFileError.build("not a model folder", got=str(path),
                                   expected="model.safetensors + model.json", fix="pass the folder pretrain wrote")
    meta = ModelMeta.load(folder / "model.json")
    model = create_backbone(meta.backbone, **meta.config)
    load_weights(model, folder / "model.safetensors", strict=True)
    return model.eval()
