"""Engine identity, the ``.engine.json`` sidecar and the engine cache: when a built engine can be reused.

The engine file stays the plain serialised engine (trtexec and other tools read it); everything it
depends on is recorded beside it under ``extra["tensorrt"]`` of its ModelMeta.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dehazekit.runtimes.meta import ModelMeta

Shape = tuple[int, int, int, int]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineIdentity:
    """Everything an engine depends on; two builds with equal identities are interchangeable."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    builder_level: int
    workspace_gib: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("min_shape", "opt_shape", "max_shape"):
            data[key] = list(data[key])
        return data

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json`` (what runtimes' TensorRT backend reads)."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def sidecar_meta(meta: ModelMeta, identity: EngineIdentity) -> ModelMeta:
    tensorrt = {**identity.to_dict(), "key": identity.key()}
    return meta.replace(precision=identity.precision, extra={**meta.extra, "tensorrt": tensorrt})


def cached_identity(engine: str | Path) -> dict[str, Any] | None:
    """The identity recorded beside an existing engine, or None when there is no usable one."""
    side = sidecar_path(engine)
    if not (Path(engine).is_file() and side.is_file()):
        return None
    try:
        return ModelMeta.load(side).extra.get("tensorrt")
    except Exception:  # a corrupt sidecar only means "rebuild"
        return None


def cache_entry(cache_dir: str | Path, identity: EngineIdentity) -> Path:
    return Path(cache_dir) / f"{identity.onnx_sha256[:12]}-{identity.key()}.engine"
