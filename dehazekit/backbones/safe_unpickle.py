"""Tensor-only unpickling for checkpoints saved as whole pickled modules.

``torch.save(model)`` pickles the module's class by reference; unpickling it normally imports and
runs the authors' code. This unpickler maps every non-tensor global to an inert placeholder that
records its state, so tensors (and the module's ``_parameters``/``_buffers`` dicts) come back while
nothing from the file is executed. The only real globals are torch's tensor-rebuild functions and
plain containers (OrderedDict, set); the state_dict is rebuilt in nn.Module order, without
non-persistent buffers. Both the zip format (torch >= 1.6) and the legacy stream format (what 2020-era
releases such as MSBDN-DFF's were written with) are read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from dehazekit.runtimes.errors import ModelFileError

_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "device"),
}
# Plain containers are safe to build for real; protocol-2 pickles name the module "__builtin__".
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset}
_STORAGE_TYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "BFloat16Storage": torch.bfloat16,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of every torch < 1.6 checkpoint


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
        return {
            k: _to_plain(v, depth + 1) for k, v in obj.items() if isinstance(v, (torch.Tensor, dict, _Inert))
        }
    return obj


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds tensors and plain containers; every other global becomes an inert placeholder."""

    def __init__(self, file: BinaryIO, storage_for: Callable[[tuple], torch.storage.TypedStorage]) -> None:
        super().__init__(file)
        self._storage_for = storage_for

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        return _inert_factory(module, name)

    def persistent_load(self, pid: Any) -> Any:
        # Legacy files also reference each module class with its source text; the class is inert here.
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            if isinstance(pid[1], type) and issubclass(pid[1], _Inert):
                return pid[1]
            raise pickle.UnpicklingError(f"unsupported module reference {pid[1]!r:.80}")
        # zip format: (tag, type, key, location, numel); legacy format adds view metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        if not isinstance(pid[1], torch.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {pid[1]!r:.80}")
        return self._storage_for(pid)


def _typed(buffer: torch.Tensor, dtype: torch.dtype) -> torch.storage.TypedStorage:
    return torch.storage.TypedStorage(wrap_storage=buffer.untyped_storage(), dtype=dtype, _internal=True)


def _unpickle_zip(zf: zipfile.ZipFile) -> Any:
    names = zf.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
        raise ModelFileError.build("zip checkpoint has no data.pkl", got=names[:5])
    root = pkl[: -len("data.pkl")]
    buffers: dict[str, torch.Tensor] = {}

    def storage_for(pid: tuple) -> torch.storage.TypedStorage:
        key = str(pid[2])
        if key not in buffers:  # tensors sharing a storage (views, tied weights) share it here too
            raw = bytearray(zf.read(f"{root}data/{key}"))
            buffers[key] = (
                torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            )
        return _typed(buffers[key], pid[1])

    return _RestrictedUnpickler(io.BytesIO(zf.read(pkl)), storage_for).load()


def _no_storage(pid: tuple) -> torch.storage.TypedStorage:
    raise pickle.UnpicklingError("storage reference in a checkpoint header")


def _unpickle_legacy(f: BinaryIO) -> Any:
    """torch < 1.6 format: magic, protocol, sys_info pickles, the object pickle, storage keys, raw
    storages."""
    magic = _RestrictedUnpickler(f, _no_storage).load()
    if magic != _LEGACY_MAGIC:
        raise ModelFileError.build(
            "not a torch checkpoint (neither zip nor legacy pickle format)",
            got=f"first pickle {str(magic)[:40]}",
        )
    _protocol, sys_info = (_RestrictedUnpickler(f, _no_storage).load() for _ in range(2))
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ModelFileError.build("big-endian legacy checkpoint is not supported", got="little_endian=False")
    buffers: dict[str, tuple[torch.Tensor, int]] = {}

    def storage_for(pid: tuple) -> torch.storage.TypedStorage:
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (torch < 0.4 checkpoints) are not supported")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in buffers:  # filled from the file after the object pickle, as torch does
            elsize = torch.empty((), dtype=dtype).element_size()
            buffers[key] = (torch.empty(numel * elsize, dtype=torch.uint8), elsize)
        return _typed(buffers[key][0], dtype)

    obj = _RestrictedUnpickler(f, storage_for).load()
    keys = _RestrictedUnpickler(f, _no_storage).load()
    for key in keys:
        buffer, elsize = buffers[str(key)]
        numel = int.from_bytes(f.read(8), "little")
        data = f.read(numel * elsize)
        if numel * elsize != buffer.numel() or len(data) != buffer.numel():
            raise ModelFileError.build("legacy checkpoint storage is truncated or inconsistent", got=str(key))
        buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    return obj


def unpickle_tensors_only(path: str | Path) -> Any:
    """Read a torch checkpoint (zip or legacy format) without executing anything from it.

    Whole pickled modules (``torch.save(model)``) come back as their state_dicts, inside plain containers
    (dict/list); everything else a pickle could build is dropped. Unwrapping {'model': ...}-style
    containers is
    the caller's job (``dehazekit.backbones.weights`` owns the one list of wrapper keys).
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                obj = _unpickle_zip(zf)
        else:
            with open(path, "rb") as f:
                obj = _unpickle_legacy(f)
    except ModelFileError:
        raise
    except Exception as exc:  # corrupt or hostile pickles raise anything from struct to KeyError
        raise ModelFileError.build("pickled checkpoint could not be read", got=f"{path}: {exc}") from exc
    return _to_plain(obj)
