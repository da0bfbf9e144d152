"""The runtime's PyTorch backend for .safetensors/.pt files or a model folder.

It lives in dehazekit core, not in dehazekit.runtimes, because it needs the backbones; the runtime finds it
through the ``dehazekit.backends`` entry points declared in pyproject.toml (runtimes never imports core).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.base import BaseBackend
from dehazekit.runtimes.errors import BackendError, ConfigError, ModelFileError, missing_dependency
from dehazekit.runtimes.meta import ModelMeta

log = logging.getLogger(__name__)


def _sidecar_meta(path: Path) -> ModelMeta | None:
    candidates = (
        [path / "model.json"] if path.is_dir() else [path.with_suffix(".json"), path.parent / "model.json"]
    )
    for candidate in candidates:
        if candidate.is_file():
            return ModelMeta.load(candidate)
    return None


class TorchBackend(BaseBackend):
    """Runs a dehazekit model in eval mode under ``torch.inference_mode``."""

    name = "torch"

    def __init__(
        self, path: str | Path, device: str = "auto", providers: object = None, threads: int | None = None
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise ModelFileError.build("model file not found", got=str(path))
        try:
            import torch

            from dehazekit.models import load_model, meta_for
        except ImportError as exc:
            raise missing_dependency("torch", None, "running .safetensors/.pt models") from exc
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        self.device = self._pick_device(device)
        model = load_model(path)
        meta = getattr(model, "dehazekit_meta", None) or _sidecar_meta(path) or meta_for(model)
        super().__init__(meta)
        self.model = model.to(self.device).eval()

    def _pick_device(self, device: str) -> str:
        torch = self._torch
        if device in ("auto", "gpu"):
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ConfigError.build(
                "unknown device for the torch backend", got=device, expected="auto, cpu, cuda"
            )
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError.build("device 'cuda' asked for but torch sees no GPU", fix="use --device cpu")
        return device

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        if isinstance(out, (list, tuple)):  # multi-scale networks: the last output is full size
            out = out[-1]
        return out.float().cpu().numpy()

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "providers": [f"torch {self._torch.__version__} {self.device}"],
            "backbone": self.meta.backbone,
            "threads": self.threads,
        }

    def close(self) -> None:
        super().close()
        self.model = None
