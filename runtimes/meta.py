"""ModelMeta: the contract that travels with every artifact (safetensors sidecar, ONNX metadata_props,
TensorRT engine sidecar). A runtime reads it and never guesses normalisation or padding."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import ConfigError, ModelFileError

META_KEY = "dehazekit.meta"  # key inside ONNX metadata_props
SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _package_version() -> str:
    from dehazekit.runtimes import __version__

    return __version__


@dataclass
class ModelMeta:
    """What a model expects and produces.

    Images are NCHW float32 RGB in ``value_range`` unless stated otherwise; ``mean``/``std`` are
    ``None`` when the network takes raw [0, 1] input (all registered backbones do).
    """

    backbone: str
    config: dict[str, Any] = field(default_factory=dict)
    input_name: str = "hazy"
    output_name: str = "clear"
    layout: str = "NCHW"
    channel_order: str = "RGB"
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    pad_multiple: int = 1
    min_size: int = 1
    adapter_digest: str | None = None
    selected_blocks: list[str] = field(default_factory=list)
    precision: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)
    dehazekit_version: str = field(default_factory=_package_version)
    created_at: str = field(default_factory=_now)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.value_range = tuple(float(v) for v in self.value_range)  # JSON gives lists
        if self.mean is not None:
            self.mean = tuple(float(v) for v in self.mean)
        if self.std is not None:
            self.std = tuple(float(v) for v in self.std)
        if not self.backbone:
            raise ConfigError.build("ModelMeta.backbone is empty", expected="a registered backbone name")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError.build("ModelMeta.layout invalid", got=self.layout, expected="NCHW or NHWC")
        if self.channel_order not in ("RGB", "BGR"):
            raise ConfigError.build(
                "ModelMeta.channel_order invalid", got=self.channel_order, expected="RGB or BGR"
            )
        if self.dtype not in ("float32", "float16"):
            raise ConfigError.build("ModelMeta.dtype invalid", got=self.dtype, expected="float32 or float16")
        if len(self.value_range) != 2 or self.value_range[0] >= self.value_range[1]:
            raise ConfigError.build(
                "ModelMeta.value_range invalid", got=self.value_range, expected="(low, high)"
            )
        for name in ("pad_multiple", "min_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError.build(f"ModelMeta.{name} must be >= 1", got=getattr(self, name))
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ConfigError.build(
                "ModelMeta.precision invalid", got=self.precision, expected="fp32, fp16 or int8"
            )

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["value_range"] = list(self.value_range)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError.build(
                "ModelMeta has unknown keys",
                got=unknown,
                expected=sorted(known),
                fix="the artifact was written by a newer dehazekit; upgrade dehazekit",
            )
        if "backbone" not in data:
            raise ModelFileError.build("ModelMeta lacks 'backbone'", got=sorted(data))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError.build("ModelMeta is not valid JSON", got=str(exc)) from exc
        if not isinstance(data, dict):
            raise ModelFileError.build("ModelMeta JSON must be an object", got=type(data).__name__)
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write atomically as JSON (``model.json`` beside ``model.safetensors``)."""
        from dehazekit.runtimes.io_utils import atomic_write_text

        return atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelMeta":
        path = Path(path)
        if not path.is_file():
            raise ModelFileError.build("ModelMeta file not found", got=str(path))
        return cls.from_json(path.read_text(encoding="utf-8"))

    def replace(self, **changes: Any) -> "ModelMeta":
        return dataclasses.replace(self, **changes)
