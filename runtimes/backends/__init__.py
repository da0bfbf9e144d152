"""Backends by file suffix: .onnx -> onnxruntime, .engine -> TensorRT; other packages add theirs.

The registry is overridable: ``register_backend(".xyz", factory)``. Packages plug in through the
``dehazekit.backends`` entry-point group (name = suffix without the dot, or ``dir`` for a model folder;
value = ``module:Class``): that is how dehazekit core registers its torch backend for .safetensors/.pt files
and model folders without the runtime ever importing the layer above it.

Backend modules are imported only when a model of their kind is opened, so ``import dehazekit.runtimes`` never
pulls onnxruntime, tensorrt or torch.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from dehazekit.runtimes.backends.base import Backend, BaseBackend
from dehazekit.runtimes.errors import ModelFileError, UnknownNameError

BackendFactory = Callable[..., Backend]

# suffix -> "module:Class" (lazy) or a callable registered at runtime
_REGISTRY: dict[str, str | BackendFactory] = {
    ".onnx": "dehazekit.runtimes.backends.onnx_backend:OnnxBackend",
    ".engine": "dehazekit.runtimes.backends.trt_backend:TensorRTBackend",
    ".plan": "dehazekit.runtimes.backends.trt_backend:TensorRTBackend",
    "<bank>": "dehazekit.runtimes.bank:open_bank",  # a folder with bank.json (dehazekit bank build)
}
ENTRY_POINT_GROUP = "dehazekit.backends"
_plugins_loaded = False


def _load_plugins() -> None:
    """Add the backends other installed packages declare; an explicit register_backend wins."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        key = "<dir>" if entry.name == "dir" else f".{entry.name.lower()}"
        _REGISTRY.setdefault(key, entry.value)


def register_backend(suffix: str, factory: BackendFactory | str, *, override: bool = False) -> None:
    """Route files ending in ``suffix`` to ``factory(path, device=..., providers=...)``."""
    suffix = suffix.lower()
    if suffix in _REGISTRY and not override:
        raise ModelFileError.build(
            f"a backend for '{suffix}' is already registered", fix="pass override=True to replace it"
        )
    _REGISTRY[suffix] = factory


def registered_suffixes() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def _resolve(entry: str | BackendFactory) -> BackendFactory:
    if callable(entry):
        return entry
    module, _, cls = entry.partition(":")
    return getattr(importlib.import_module(module), cls)


def backend_key(path: Path) -> str:
    _load_plugins()
    if path.is_dir():
        return "<bank>" if (path / "bank.json").is_file() else "<dir>"
    if not path.exists():
        raise ModelFileError.build(
            "model file not found",
            got=str(path),
            fix="check the path (pass --model PATH on the command line)",
        )
    suffix = path.suffix.lower()
    if suffix not in _REGISTRY:
        close = difflib.get_close_matches(suffix, list(_REGISTRY), n=3)
        raise UnknownNameError.build(
            f"no runtime backend for '{suffix}' files",
            got=path.name,
            expected=registered_suffixes(),
            fix=f"did you mean {', '.join(close)}?"
            if close
            else "export to ONNX first (.safetensors/.pt models need: pip install 'dehazekit[adapt]')",
        )
    return suffix


def open_backend(
    path: str | Path, device: str = "auto", providers: Sequence[str] | None = None, **kwargs: object
) -> Backend:
    """Open a model file with the backend its suffix maps to."""
    path = Path(path)
    factory = _resolve(_REGISTRY[backend_key(path)])
    return factory(path, device=device, providers=providers, **kwargs)


__all__ = ["Backend", "BaseBackend", "open_backend", "register_backend", "registered_suffixes"]
