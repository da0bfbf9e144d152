"""Write/read training outputs as model folders (model.safetensors + model.json) via dehazekit.models."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


def save_trained(model: nn.Module, out_dir: str | Path, extra: dict[str, Any]) -> Path:
    """Save ``model`` into ``out_dir``; ``extra`` (training provenance) lands in ModelMeta.extra."""
    from dehazekit.models import save_model

    save_model(model, out_dir, extra=extra)
    return Path(out_dir)


def load_trained(path: str | Path | None) -> nn.Module:
    """Load a model folder or file in eval mode; None = the bundled default model."""
    from dehazekit.models import load_model

    return load_model(path).eval()
