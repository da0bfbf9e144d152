"""TensorRT build logic that needs no GPU: versions, precision plans, profiles, identity, sidecar, cache.

The version branches of the builder are exercised with a recording stand-in for the tensorrt module
(TensorRT cannot be installed or run here); the real build is the `trt`-marked test at the end.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import dehazekit.exporters.tensorrt_build as tb
from dehazekit.runtimes.errors import ConfigError, MissingDependencyError
from dehazekit.runtimes.meta import ModelMeta

META = ModelMeta(backbone="tiny-gunet", pad_multiple=32, min_size=256)


@pytest.mark.parametrize(
    "version,generation", [("10.0.1", 10), ("10.13.3.9", 10), ("11.0.0", 11), ("12.1", 11)]
)
def test_api_generation(version, generation):
    assert tb.api_generation(version) == generation


@pytest.mark.parametrize("version", ["8.6.1", "9.2", "garbage"])
def test_api_generation_refuses_old_or_unreadable(version):
    with pytest.raises(ConfigError):
        tb.api_generation(version)


def test_precision_plans():
    assert tb.plan_precision(10, "fp32", fp16=True) == tb.PrecisionPlan(False, True, "fp16")
    assert tb.plan_precision(10, "fp32", fp16=False) == tb.PrecisionPlan(False, False, "fp32")
    assert tb.plan_precision(10, "fp16", fp16=False) == tb.PrecisionPlan(True, False, "fp16")
    assert tb.plan_precision(11, "fp16", fp16=True) == tb.PrecisionPlan(True, False, "fp16")
    assert tb.plan_precision(11, "fp32", fp16=False) == tb.PrecisionPlan(True, False, "fp32")
    with pytest.raises(ConfigError, match="fp16 ONNX"):
        tb.plan_precision(11, "fp32", fp16=True)


def test_parse_shape():
    assert tb.parse_shape("1x3x256x320") == (1, 3, 256, 320)
    for bad in ("1x3x256", "1x3x0x256", "axbxcxd", ""):
        with pytest.raises(ConfigError):
            tb.parse_shape(bad)


def test_default_profile_is_rounded_to_the_pad_multiple():
    profile = tb.ShapeProfile.for_meta(META)
    assert profile.min == (1, 3, 256, 256)
    assert profile.opt == (1, 3, 736, 1280)  # 720 is not a multiple of 32
    assert profile.max == (1, 3, 1088, 1920)


def test_profile_validation():
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        tb.ShapeProfile((1, 3, 512, 512), (1, 3, 256, 256), (1, 3, 1024, 1024))
    with pytest.raises(ConfigError, match="B, 3, H, W"):
        tb.ShapeProfile((1, 4, 256, 256), (1, 4, 256, 256), (1, 4, 256, 256))
    with pytest.raises(ConfigError, match="multiples of 32"):
        tb.ShapeProfile.for_meta(META, min_shape=(1, 3, 250, 256))
    with pytest.raises(ConfigError, match=">= 256"):
        tb.ShapeProfile.for_meta(META, min_shape=(1, 3, 224, 224))


def _identity(**changes):
    base = tb.EngineIdentity(
        "ab" * 32,
        "10.7.0",
        "NVIDIA H100",
        "9.0",
        "fp16",
        (1, 3, 256, 256),
        (1, 3, 736, 1280),
        (1, 3, 1088, 1920),
        3,
        4.0,
    )
    return replace(base, **changes)


def test_identity_key_is_stable_and_sensitive():
    assert _identity().key() == _identity().key()
    keys = {
        _identity().key(),
        _identity(trt_version="10.8.0").key(),
        _identity(gpu_name="Orin").key(),
        _identity(precision="fp32").key(),
        _identity(max_shape=(2, 3, 1088, 1920)).key(),
        _identity(onnx_sha256="cd" * 32).key(),
        _identity(builder_level=5).key(),
    }
    assert len(keys) == 7


def test_sidecar_round_trip_and_cache_lookup(tmp_path):
    from dehazekit.runtimes.backends.trt_backend import engine_sidecar

    engine = tmp_path / "model.engine"
    assert tb.sidecar_path(engine) == engine_sidecar(engine)  # the runtime reads what we write
    identity = _identity()
    tb.sidecar_meta(META, identity).save(tb.sidecar_path(engine))
    assert tb.cached_identity(engine) is None  # no engine file yet
    engine.write_bytes(b"plan")
    loaded = ModelMeta.load(tb.sidecar_path(engine))
    assert loaded.precision == "fp16" and loaded.backbone == META.backbone
    assert tb.cached_identity(engine) == {**identity.to_dict(), "key": identity.key()}
    assert tb.cache_entry(tmp_path, identity).name.endswith(f"{identity.key()}.engine")


def test_trtexec_command_per_generation():
    profile = tb.ShapeProfile.for_meta(META)
    weak = tb.trtexec_command(
        "m.onnx", "m.engine", profile, tb.plan_precision(10, "fp32", True), timing_cache="t.cache"
    )
    assert "--fp16" in weak and "--minShapes=hazy:1x3x256x256" in weak and "--timingCacheFile=t.cache" in weak
    strong10 = tb.trtexec_command("m.onnx", "m.engine", profile, tb.plan_precision(10, "fp16", False))
    assert "--stronglyTyped" in strong10 and "--fp16" not in strong10
    eleven = tb.trtexec_command(
        "m.onnx", "m.engine", profile, tb.plan_precision(11, "fp16", False), generation=11
    )
    assert "--fp16" not in eleven and "--stronglyTyped" not in eleven


def test_build_args_are_checked_before_tensorrt(tmp_path):
    with pytest.raises(ConfigError, match="workspace"):
        tb.check_build_args(0, 3)
    with pytest.raises(ConfigError, match="level"):
        tb.check_build_args(4, 7)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_missing_tensorrt_names_the_extra(exports, tmp_path):
    with pytest.raises(MissingDependencyError, match=r"dehazekit\[trt\]"):
        tb.build_engine(exports.onnx("tiny-gunet"), tmp_path / "m.engine")


@pytest.mark.parametrize(
    "version,onnx_precision,fp16,strongly_typed,fp16_flag",
    [
        ("10.7.0", "fp32", True, None, True),  # TRT 10 weak typing: builder FP16 flag
        ("10.7.0", "fp16", False, True, False),  # TRT 10 strong typing from an fp16 ONNX
        ("11.0.0", "fp16", False, None, False),  # TRT 11: always strongly typed, no flag to set
    ],
)
def test_polygraphy_loader_arguments_per_version(
    tmp_path, version, onnx_precision, fp16, strongly_typed, fp16_flag
):
    from polygraphy.backend.trt import Profile

    trt = SimpleNamespace(MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"))  # only the enum is read
    generation = tb.api_generation(version)
    plan = tb.plan_precision(generation, onnx_precision, fp16)
    profile = tb.ShapeProfile.for_meta(META)
    cache = tmp_path / "t.cache"
    recipe = tb.build_recipe(trt, generation, plan, profile, 2.0, cache, 3)
    assert recipe.strongly_typed is strongly_typed and recipe.config["fp16"] is fp16_flag
    assert recipe.config["memory_pool_limits"] == {"WORKSPACE": 2 << 30}
    assert recipe.config["builder_optimization_level"] == 3
    assert recipe.config["load_timing_cache"] is None and recipe.save_timing_cache == str(
        cache
    )  # no file yet
    [shapes] = recipe.config["profiles"]
    assert isinstance(shapes, Profile) and list(shapes) == ["hazy"]
    assert (shapes["hazy"].min, shapes["hazy"].opt, shapes["hazy"].max) == (
        profile.min,
        profile.opt,
        profile.max,
    )
    cache.write_bytes(b"x")
    again = tb.build_recipe(trt, generation, plan, profile, 2.0, cache, 3)
    assert again.config["load_timing_cache"] == str(cache)


def test_polygraphy_create_config_accepts_the_recipe():
    """CreateConfig's keyword names are checked against the installed Polygraphy (no TensorRT needed)."""
    from polygraphy.backend.trt import CreateConfig

    plan = tb.plan_precision(10, "fp32", True)
    trt = SimpleNamespace(MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"))
    recipe = tb.build_recipe(trt, 10, plan, tb.ShapeProfile.for_meta(META), 4.0, None, 3)
    config = CreateConfig(**recipe.config)
    assert config.fp16 is True and config.builder_optimization_level == 3


@pytest.mark.trt
@pytest.mark.parametrize("fp16", [False, True])
def test_build_engine_matches_onnxruntime(exports, tmp_path, fp16):
    from dehazekit.exporters.verify import Tolerance, compare, ort_session
    from dehazekit.runtimes.backends.trt_backend import TensorRTBackend

    onnx_path = exports.onnx("tiny-gunet", "fp16" if fp16 else "fp32")
    shapes = {"min_shape": (1, 3, 64, 64), "opt_shape": (1, 3, 64, 96), "max_shape": (2, 3, 128, 128)}
    engine = tb.build_engine(onnx_path, tmp_path / "m.engine", timing_cache=tmp_path / "t.cache", **shapes)
    again = tb.build_engine(
        onnx_path.read_bytes(), tmp_path / "m.engine", timing_cache=tmp_path / "t.cache", **shapes
    )
    assert engine == again and (tmp_path / "t.cache").is_file()
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    ref = ort_session(onnx_path).run(None, {"hazy": x})[0]
    with TensorRTBackend(engine) as backend:
        got = backend.infer(x)
    # fp32 engines may use TF32 tactics (10-bit mantissa, like fp16): judged with the fp16 tolerances
    assert compare("trt", ref, got, Tolerance.for_precision("fp16")).passed


@pytest.mark.trt
def test_export_engine_passes_its_parity_check(tmp_path):
    """The whole pipeline on a GPU: ONNX -> Polygraphy TensorRT build -> TrtRunner vs OnnxrtRunner report."""
    import torch

    from dehazekit.backbones import create_backbone
    from dehazekit.exporters import export

    torch.manual_seed(0)
    result = export(
        create_backbone("tiny-gunet").eval(),
        "engine",
        out=tmp_path,
        min_shape="1x3x64x64",
        opt_shape="1x3x256x256",
        max_shape="1x3x512x512",
    )
    assert result.engine is not None and result.engine.is_file() and result.engine_parity.passed
    assert (tmp_path / "model.engine.json").is_file() and (tmp_path / "model.engine.parity.json").is_file()
