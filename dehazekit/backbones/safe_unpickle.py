"""Tensor-only unpickling for checkpoints saved as whole pickled modules.

``torch.save(model)`` pickles the module's class by reference; unpickling it normally imports and
runs the authors' code. This unpickler maps every non-tensor global to an inert placeholder that
records its state, so tensors (and the module's ``_parameters``/``_buffers`` dicts) come back while
nothing from the file is executed. The only real globals are torch's tensor-rebuild functions and
plain containers (OrderedDict, set); the state_dict is rebuilt in nn.Module order, without
non-persistent buffers.
"""
from __future__ import annotations

import collections
import io
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
# Plain containers are safe to build for real; protocol-2 pickles name the module "__builtin__".
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset}
_STORAGE_TYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                  "LongStorage": torch.int64, "IntStorage": torch.int32, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool, "BFloat16Storage": torch.bfloat16, "ShortStorage": torch.int16,
                  "CharStorage": torch.int8}
_WRAPPERS = ("model", "state_dict", "net", "params", "params_ema", "model_state_dict")


class _Inert:
    """Stands in for any class from the checkpoint; keeps its pickled state as plain data.

    It accepts whatever pickle asks of an instance (constructor args, state, list or dict items)
    and never calls into the class it replaces, so a ``__reduce__`` naming os.system builds a husk.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def append(self, item: Any) -> None:  # pickle APPENDS on list subclasses
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:  # pickle SETITEMS on dict subclasses
        pass


def _inert_factory(module: str, name: str) -> type:
    return type(name, (_Inert,), {"__module__": f"inert.{module}"})


def _module_state(obj: Any) -> dict | None:
    """The pickled __dict__ of something that looks like an nn.Module, else None."""
    state = obj.state if isinstance(obj, _Inert) else None
    if isinstance(state, tuple) and state and isinstance(state[0], dict):  # (dict, slotstate) form
        state = state[0]
    if isinstance(state, dict) and ("_parameters" in state or "_modules" in state):
        return state
    return None


def _collect(state: dict, prefix: str, out: dict[str, torch.Tensor], depth: int = 0) -> None:
    """Rebuild a state_dict like nn.Module.state_dict(): own params, persistent buffers, then children."""
    if depth > 64:
        raise ModelFileError.build("pickled module nesting too deep", got=depth, expected="<= 64 levels")
    skip = state.get("_non_persistent_buffers_set")
    skip = skip if isinstance(skip, (set, frozenset)) else set()
    for bucket in ("_parameters", "_buffers"):
        for key, value in (state.get(bucket) or {}).items():
            if isinstance(value, torch.Tensor) and not (bucket == "_buffers" and key in skip):
                out[prefix + key] = value.detach()
    for key, child in (state.get("_modules") or {}).items():
        child_state = _module_state(child)
        if child_state is not None:
            _collect(child_state, f"{prefix}{key}.", out, depth + 1)


def _to_plain(obj: Any, depth: int = 0) -> Any:
    """Replace inert modules by their state_dicts; keep dicts of tensors; drop everything else."""
    state = _module_state(obj)
    if state is not None:
        out: dict[str, torch.Tensor] = collections.OrderedDict()
        _collect(state, "", out)
        return out
    if isinstance(obj, dict) and depth < 4:
        return {k: _to_plain(v, depth + 1) for k, v in obj.items()
                if isinstance(v, (torch.Tensor, dict, _Inert))}
    return obj


def _unpickle(zf: zipfile.ZipFile) -> Any:
    names = zf.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
        raise ModelFileError.build("zip checkpoint has no data.pkl", got=names[:5])
    root = pkl[: -len("data.pkl")]
    storages: dict[str, torch.UntypedStorage] = {}

    def load_storage(key: str) -> torch.UntypedStorage:
        # Tensors that share a storage (views, tied weights) share it here too.
        if key not in storages:
            raw = bytearray(zf.read(f"{root}data/{key}"))
            storages[key] = (torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw
                             else torch.UntypedStorage(0))
        return storages[key]

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _ALLOWED:
                return super().find_class(module, name)
            if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
                return _SAFE_BUILTINS[name]
            if module == "torch" and name in _STORAGE_TYPES:
                return _STORAGE_TYPES[name]
            return _inert_factory(module, name)

        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
            _, dtype, key, _location, _numel = pid
            if not isinstance(dtype, torch.dtype):
                raise pickle.UnpicklingError(f"unsupported storage type {dtype!r:.80}")
            return torch.storage.TypedStorage(wrap_storage=load_storage(str(key)), dtype=dtype, _internal=True)

    return Unpickler(io.BytesIO(zf.read(pkl))).load()


def load_tensors_only(path: str | Path) -> dict[str, torch.Tensor]:
    """Extract a state_dict from a zip-format torch checkpoint without executing anything from it.

    Handles whole pickled modules (``torch.save(model)``), dicts wrapping them or a state_dict under
    the usual keys, and 'module.' prefixes. Raises ModelFileError when no tensors can be found.
    """
    from dehazekit.backbones.weights import unwrap_state_dict

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError.build("legacy (non-zip) pickled checkpoint cannot be read safely", got=str(path),
                                   fix="re-save it with torch.save(model.state_dict(), 'x.pth') in the authors' code")
    try:
        with zipfile.ZipFile(path) as zf:
            obj = _unpickle(zf)
    except ModelFileError:
        raise
    except Exception as exc:  # corrupt or hostile pickles raise anything from struct to KeyError
        raise ModelFileError.build("pickled checkpoint could not be read", got=f"{path}: {exc}") from exc
    plain = _to_plain(obj)
    if isinstance(plain, dict):
        inner = next((plain[k] for k in _WRAPPERS if isinstance(plain.get(k), dict) and plain[k]), None)
        plain = inner if inner is not None and not any(isinstance(v, torch.Tensor) for v in plain.values()) else plain
    try:
        return unwrap_state_dict(plain, source=str(path))
    except ModelFileError as exc:
        raise ModelFileError.build("no tensors found in pickled checkpoint", got=str(path),
                                   fix="the file holds no model weights") from exc
