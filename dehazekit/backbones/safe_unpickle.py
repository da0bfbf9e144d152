"""Tensor-only unpickling for checkpoints saved as whole pickled modules.

``torch.save(model)`` pickles the module's class by reference; unpickling it normally imports and
runs the authors' code. This unpickler maps every non-tensor global to an inert placeholder that
records its state, so tensors (and the module's ``_parameters``/``_buffers`` dicts) come back while
nothing from the file is executed. Torch's own tensor-rebuild functions are the only allowed globals.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from runtimes.errors import ModelFileError

_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("collections", "OrderedDict"),
    ("torch", "Size"), ("torch", "device"),
}
_STORAGE_TYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                  "LongStorage": torch.int64, "IntStorage": torch.int32, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool, "BFloat16Storage": torch.bfloat16}


class _Inert:
    """Stands in for any class from the checkpoint; keeps its pickled state as plain data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":
        return _Inert()


def _inert_factory(module: str, name: str) -> type:
    return type(name, (_Inert,), {"__module__": f"inert.{module}"})


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor], depth: int = 0) -> None:
    """Rebuild a state_dict from inert modules: _parameters/_buffers per level, _modules recursively."""
    if depth > 64:
        return
    state = obj.state if isinstance(obj, _Inert) else obj
    if not isinstance(state, dict):
        return
    for bucket in ("_parameters", "_buffers"):
        for key, value in (state.get(bucket) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + key] = value.detach()
    for key, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect(child, f"{prefix}{key}.", out, depth + 1)


def load_tensors_only(path: str | Path) -> dict[str, torch.Tensor]:
    """Extract tensors from a zip-format torch checkpoint without executing its classes."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError.build("legacy (non-zip) pickled checkpoint cannot be read safely", got=str(path),
                                   fix="re-save it with torch.save(model.state_dict(), 'x.pth') in the authors' code")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        data_pkl = zf.read(f"{root}/data.pkl")

        def load_storage(dtype: torch.dtype, key: str) -> torch.UntypedStorage:
            raw = bytearray(zf.read(f"{root}/data/{key}"))
            return torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if (module, name) in _ALLOWED:
                    return super().find_class(module, name)
                if module == "torch" and name in _STORAGE_TYPES:
                    return _STORAGE_TYPES[name]
                return _inert_factory(module, name)

            def persistent_load(self, pid: Any) -> Any:
                _, storage_type, key, _location, _numel = pid
                dtype = storage_type if isinstance(storage_type, torch.dtype) else getattr(storage_type, "dtype", torch.float32)
                storage = load_storage(dtype, key)
                return torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)

        import io

        obj = Unpickler(io.BytesIO(data_pkl)).load()
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    out: dict[str, torch.Tensor] = collections.OrderedDict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "net"):
            if key in obj:
                obj = obj[key]
                break
    _collect(obj, "", out)
    if not out:
        raise ModelFileError.build("no tensors found in pickled checkpoint", got=str(path))
    return dict(out)
