"""TensorRT engine building: every TensorRT version branch of dehazekit lives in this module.

The parse and build go through Polygraphy's TensorRT loaders (NetworkFromOnnxBytes, CreateConfig,
EngineBytesFromNetwork); this module decides their arguments per TensorRT API generation
(from the TensorRT Python API docs and the 10.x -> 11.x migration guide):
- TRT 10: networks are always explicit-batch; precision is either weak (fp32 ONNX + BuilderFlag.FP16)
  or strong (NetworkDefinitionCreationFlag.STRONGLY_TYPED, types taken from an fp16 ONNX).
- TRT 11: strongly typed only; BuilderFlag.FP16 is removed, so fp16 engines need an fp16 ONNX.
Both: OnnxParser.parse_from_file, BuilderConfig.set_memory_pool_limit(WORKSPACE), one optimisation
profile on input "hazy", builder_optimization_level, a serialised timing cache reused across builds.

The engine file is the plain serialised engine (no header, so trtexec and other tools read it); its
ModelMeta sidecar ``model.engine.json`` carries the build identity under ``extra["tensorrt"]``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from dehazekit.exporters.engine_cache import (  # noqa: F401  (part of this module's API)
    EngineIdentity,
    cache_entry,
    cached_identity,
    file_sha256,
    sidecar_meta,
    sidecar_path,
)
from dehazekit.runtimes.errors import ConfigError, ExportError, missing_dependency
from dehazekit.runtimes.io_utils import atomic_write_bytes
from dehazekit.runtimes.meta import ModelMeta

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

Shape = tuple[int, int, int, int]
INPUT_NAME = "hazy"
DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = (1, 3, 256, 256), (1, 3, 720, 1280), (1, 3, 1080, 1920)


# --- versions --------------------------------------------------------------------------------
def api_generation(version: str) -> int:
    """10 for TensorRT 10.x, 11 for 11.x and later (strongly typed only); older versions are refused."""
    match = re.match(r"^\s*(\d+)\.", str(version) + ".")
    if not match:
        raise ConfigError.build("unreadable TensorRT version", got=version, expected="like '10.7.0'")
    major = int(match.group(1))
    if major < 10:
        raise ConfigError.build(
            "TensorRT too old",
            got=version,
            expected=">= 10.0",
            fix="pip install 'dehazekit[trt]' (TensorRT 10 or 11)",
        )
    return 10 if major == 10 else 11


@dataclass(frozen=True)
class PrecisionPlan:
    strongly_typed: bool
    fp16_flag: bool  # TRT 10 weak typing only
    precision: str


def plan_precision(generation: int, onnx_precision: str, fp16: bool) -> PrecisionPlan:
    """How to get the requested precision out of this TensorRT generation and this ONNX file."""
    if onnx_precision == "fp16":
        return PrecisionPlan(strongly_typed=True, fp16_flag=False, precision="fp16")
    if not fp16:
        return PrecisionPlan(strongly_typed=generation >= 11, fp16_flag=False, precision="fp32")
    if generation >= 11:
        raise ConfigError.build(
            "TensorRT 11 builds fp16 only from an fp16 ONNX (strongly typed networks)",
            got="fp32 ONNX with fp16=True",
            fix="export with fp16=True / `dehazekit export --fp16`",
        )
    return PrecisionPlan(strongly_typed=False, fp16_flag=True, precision="fp16")


# --- shapes ----------------------------------------------------------------------------------
def parse_shape(text: str) -> Shape:
    """'1x3x256x256' -> (1, 3, 256, 256)."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError.build(
            "invalid shape", got=text, expected="BxCxHxW with positive integers, e.g. 1x3x256x256"
        )
    return shape  # type: ignore[return-value]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimisation profile for input "hazy": min <= opt <= max per dimension."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            shape = getattr(self, name)
            if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
                raise ConfigError.build(f"profile {name} shape invalid", got=shape, expected="(B, 3, H, W)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ConfigError.build(
                "profile must satisfy min <= opt <= max in every dimension",
                got={"min": self.min, "opt": self.opt, "max": self.max},
            )

    def check_model(self, pad_multiple: int, min_size: int) -> None:
        """H and W of every shape must be valid for the network (runtimes pads inputs up to them)."""
        for name in ("min", "opt", "max"):
            h, w = getattr(self, name)[2:]
            if h % pad_multiple or w % pad_multiple or min(h, w) < min_size:
                raise ConfigError.build(
                    f"profile {name} H/W invalid for this backbone",
                    got=(h, w),
                    expected=f"multiples of {pad_multiple}, >= {min_size}",
                    fix=f"e.g. {_round_up(max(h, min_size), pad_multiple)}x"
                    f"{_round_up(max(w, min_size), pad_multiple)}",
                )

    @classmethod
    def for_meta(
        cls,
        meta: ModelMeta,
        min_shape: Shape | None = None,
        opt_shape: Shape | None = None,
        max_shape: Shape | None = None,
    ) -> ShapeProfile:
        """Given shapes (validated) or defaults 256 px / 720p / 1080p rounded up to the pad multiple."""

        def fit(shape: Shape) -> Shape:
            m, s = meta.pad_multiple, meta.min_size
            return (shape[0], 3, _round_up(max(shape[2], s), m), _round_up(max(shape[3], s), m))

        profile = cls(
            tuple(min_shape or fit(DEFAULT_MIN)),
            tuple(opt_shape or fit(DEFAULT_OPT)),
            tuple(max_shape or fit(DEFAULT_MAX)),
        )
        profile.check_model(meta.pad_multiple, meta.min_size)
        return profile

    def trtexec_args(self) -> list[str]:
        def fmt(shape: Shape) -> str:
            return "x".join(map(str, shape))

        return [
            f"--minShapes={INPUT_NAME}:{fmt(self.min)}",
            f"--optShapes={INPUT_NAME}:{fmt(self.opt)}",
            f"--maxShapes={INPUT_NAME}:{fmt(self.max)}",
        ]


def trtexec_command(
    onnx_path: str | Path,
    engine: str | Path,
    profile: ShapeProfile,
    plan: PrecisionPlan,
    *,
    generation: int = 10,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
    builder_level: int = 3,
) -> str:
    """The trtexec equivalent of build_engine (for users without the Python package)."""
    args = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine}",
        *profile.trtexec_args(),
        f"--memPoolSize=workspace:{int(workspace_gib * 1024)}M",
        f"--builderOptimizationLevel={builder_level}",
    ]
    if generation == 10 and plan.fp16_flag:
        args.append("--fp16")
    elif generation == 10 and plan.strongly_typed:
        args.append("--stronglyTyped")  # TRT 11 is always strongly typed: no flag needed
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    return " ".join(args)


# --- build -----------------------------------------------------------------------------------
def tensorrt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise missing_dependency("tensorrt", "trt", "building TensorRT engines") from exc
    return trt


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of CUDA device 0."""
    import torch

    if not torch.cuda.is_available():
        raise ExportError.build(
            "building a TensorRT engine needs an NVIDIA GPU",
            got="no CUDA device",
            fix="build on the target device (engines are specific to GPU and TensorRT version)",
        )
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def check_build_args(workspace_gib: float, builder_level: int) -> None:
    if not 0 < workspace_gib <= 1024:
        raise ConfigError.build("workspace size invalid", got=workspace_gib, expected="0 < GiB <= 1024")
    if builder_level not in range(6):
        raise ConfigError.build(
            "builder optimisation level invalid", got=builder_level, expected="0..5 (default 3)"
        )


@dataclass(frozen=True)
class BuildRecipe:
    """Arguments for Polygraphy's TensorRT loaders, decided from the precision plan and the request."""

    strongly_typed: bool | None  # NetworkFromOnnxBytes; TRT 11 is always strongly typed (no flag)
    config: dict[str, Any]  # CreateConfig keyword arguments
    save_timing_cache: str | None  # EngineBytesFromNetwork merges into and writes this file


def build_recipe(
    trt: Any,
    generation: int,
    plan: PrecisionPlan,
    profile: ShapeProfile,
    workspace_gib: float,
    timing_cache: Path | None,
    builder_level: int,
) -> BuildRecipe:
    from polygraphy.backend.trt import Profile

    shapes = Profile().add(INPUT_NAME, min=profile.min, opt=profile.opt, max=profile.max)
    config = {
        "fp16": plan.fp16_flag,  # only planned for TRT 10 (BuilderFlag.FP16 is removed in 11)
        "profiles": [shapes],
        "memory_pool_limits": {trt.MemoryPoolType.WORKSPACE: int(workspace_gib * (1 << 30))},
        "builder_optimization_level": builder_level,
        "load_timing_cache": str(timing_cache)
        if timing_cache is not None and timing_cache.is_file()
        else None,
    }
    strongly_typed = True if plan.strongly_typed and generation == 10 else None
    return BuildRecipe(strongly_typed, config, str(timing_cache) if timing_cache is not None else None)


def _build_serialized(trt: Any, onnx_bytes: bytes, recipe: BuildRecipe) -> bytes:
    """Parse and build through Polygraphy's loaders (NetworkFromOnnxBytes -> CreateConfig -> engine bytes)."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxBytes
    from polygraphy.exception import PolygraphyException

    network = NetworkFromOnnxBytes(onnx_bytes, strongly_typed=recipe.strongly_typed)
    build = EngineBytesFromNetwork(
        network, config=CreateConfig(**recipe.config), save_timing_cache=recipe.save_timing_cache
    )
    try:
        serialized = build()
    except PolygraphyException as exc:
        raise ExportError.build(
            "TensorRT engine build failed",
            got=str(exc).strip().splitlines()[-1][:300],
            fix="see the TensorRT log above; check dehazekit.exporters.lint_onnx(onnx) or raise --workspace",
        ) from exc
    return bytes(memoryview(serialized))


OnnxSource = Union[str, Path, bytes, "onnx.ModelProto"]


def _onnx_source(onnx_model: OnnxSource) -> tuple[bytes, ModelMeta]:
    """Serialised bytes and ModelMeta of the ONNX model, reading or parsing it at most once."""
    import onnx

    from dehazekit.exporters.onnx_export import read_meta

    if isinstance(onnx_model, (str, Path)):
        path = Path(onnx_model)
        if not path.is_file():
            raise ExportError.build("ONNX file to build from not found", got=str(path))
        data = path.read_bytes()
        return data, read_meta(onnx.load_from_string(data))
    if isinstance(onnx_model, bytes):
        return onnx_model, read_meta(onnx.load_from_string(onnx_model))
    return onnx_model.SerializeToString(), read_meta(onnx_model)


def build_engine(
    onnx_model: OnnxSource,
    out: str | Path,
    *,
    fp16: bool = False,
    min_shape: Shape | None = None,
    opt_shape: Shape | None = None,
    max_shape: Shape | None = None,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
    builder_level: int = 3,
    cache_dir: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Build ``out`` (plain serialised engine) + ``out.json`` (ModelMeta with the build identity).

    ``onnx_model``: a path, serialised bytes or an in-memory ``onnx.ModelProto``. An existing engine
    whose sidecar records the same identity (ONNX sha256, TensorRT version, GPU, precision, shapes,
    level, workspace) is reused unless ``force``; ``cache_dir`` keeps engines by identity key across
    output paths; ``timing_cache`` is read before and merged/written after the build.
    """
    out = Path(out)
    check_build_args(workspace_gib, builder_level)
    onnx_bytes, meta = _onnx_source(onnx_model)
    profile = ShapeProfile.for_meta(meta, min_shape, opt_shape, max_shape)
    trt = _import_tensorrt()
    generation = api_generation(trt.__version__)
    plan = plan_precision(generation, meta.precision, fp16)
    gpu, capability = gpu_identity()
    identity = EngineIdentity(
        hashlib.sha256(onnx_bytes).hexdigest(),
        str(trt.__version__),
        gpu,
        capability,
        plan.precision,
        profile.min,
        profile.opt,
        profile.max,
        builder_level,
        float(workspace_gib),
    )
    wanted = {**identity.to_dict(), "key": identity.key()}
    if not force and cached_identity(out) == wanted:
        log.info("engine %s is up to date (key %s)", out, identity.key())
        return out
    entry = cache_entry(cache_dir, identity) if cache_dir else None
    if entry is not None and not force and cached_identity(entry) == wanted:
        log.info("engine cache hit %s", entry)
        data = entry.read_bytes()
    else:
        log.info(
            "building TensorRT %s engine (%s, %s) - this takes minutes", trt.__version__, plan.precision, gpu
        )
        cache_file = Path(timing_cache) if timing_cache else None
        recipe = build_recipe(trt, generation, plan, profile, workspace_gib, cache_file, builder_level)
        data = _build_serialized(trt, onnx_bytes, recipe)
    side = sidecar_meta(meta, identity)
    atomic_write_bytes(out, data)
    side.save(sidecar_path(out))
    if entry is not None and cached_identity(entry) != wanted:
        atomic_write_bytes(entry, data)
        side.save(sidecar_path(entry))
    return out
