"""Export formats and the argument combinations each accepts, checked before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dehazekit.exporters.onnx_export import OPSET_RANGE
from dehazekit.runtimes.errors import ConfigError


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    package: str | None  # optional dependency needed to produce it
    options: frozenset[str]
    description: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "onnx",
        ".onnx",
        None,
        frozenset({"opset", "fp16", "verify_images", "force"}),
        "ONNX, dynamic batch/H/W, ModelMeta in metadata_props; runs on onnxruntime anywhere",
    ),
    "engine": ExportFormat(
        "engine",
        ".engine",
        "tensorrt",
        frozenset({"fp16", "min_shape", "opt_shape", "max_shape", "workspace", "timing_cache"}),
        "TensorRT engine + model.engine.json; specific to one GPU model and TensorRT version",
    ),
}
TRT_ONLY = ("min_shape", "opt_shape", "max_shape", "workspace", "timing_cache")


@dataclass
class ExportRequest:
    """What `dehazekit export` was asked to do; __post_init__ rejects unsupported combinations."""

    trt: bool = False
    fp16: bool = False
    int8: bool = False
    opset: int = 17
    min_shape: str | None = None
    opt_shape: str | None = None
    max_shape: str | None = None
    workspace: float | None = None
    timing_cache: Path | None = None
    verify_images: Path | None = None
    shapes: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.int8:
            raise ConfigError.build(
                "--int8 needs calibration data",
                got="--int8 without calibration images",
                expected="fp32 or --fp16",
                fix="INT8 calibration is not supported by dehazekit export yet; use --fp16",
            )
        given = [f"--{name.replace('_', '-')}" for name in TRT_ONLY if getattr(self, name) is not None]
        if given and not self.trt:
            raise ConfigError.build(
                "TensorRT options given without --trt", got=given, fix="add --trt or drop them"
            )
        if not OPSET_RANGE[0] <= self.opset <= OPSET_RANGE[1]:
            raise ConfigError.build(
                "unsupported --opset",
                got=self.opset,
                expected=f"{OPSET_RANGE[0]}..{OPSET_RANGE[1]} (TensorRT 10 parses up to 20)",
            )
        if self.workspace is not None and not 0 < self.workspace <= 1024:
            raise ConfigError.build("--workspace invalid", got=self.workspace, expected="GiB in (0, 1024]")
        if self.verify_images is not None and not Path(self.verify_images).is_dir():
            raise ConfigError.build("--verify-images must be a folder of photos", got=str(self.verify_images))
        from dehazekit.exporters.tensorrt_build import parse_shape

        self.shapes = {
            name: parse_shape(getattr(self, name)) if getattr(self, name) else None
            for name in ("min_shape", "opt_shape", "max_shape")
        }

    @property
    def formats(self) -> list[ExportFormat]:
        return [FORMATS["onnx"], FORMATS["engine"]] if self.trt else [FORMATS["onnx"]]
