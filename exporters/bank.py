"""`dehazekit bank build`: one base ONNX plus, per scene adapter, only the weights its K blocks change.

Every adapter folder (written by `dehazekit adapt`: adapter.json + the merged model.safetensors) is
checked against the base: same backbone and config, and every tensor outside the adapter's own
blocks byte-identical to the base's (a per-adapter sha256 over those tensors, compared with the
base's over the same keys). Then the base and each merged model go through the same ONNX export
and the initializers that differ are the adapter's weights; the graphs must otherwise be identical.
Diffing the exported graphs (rather than renaming state_dict keys) stays right whatever the deploy
transform does to names and layouts.

Bank layout (``BANK_DIR``)::

    bank.json             manifest: backbone, base digest, adapters (file, sha256, blocks, haze signature)
    base.onnx             the base network; every initializer an adapter touches is also a graph
                          input, so onnxruntime lets one session take it per run (see runtimes.bank)
    adapters/base.npz     the base values of those initializers (restores the base, e.g. after a refit)
    adapters/NAME.npz     the adapter's merged values of the initializers it changes
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from dehazekit.catalog import BUNDLED_MODELS, WEIGHTS_SYNTHETIC, bundled_model_dir
from dehazekit.runtimes.bank import BANK_FORMAT, MANIFEST, adapter_file
from dehazekit.runtimes.errors import ConfigError, DehazeKitError, ExportError, ModelFileError, OutputError

log = logging.getLogger(__name__)

FIXED_CREATED_AT = "1970-01-01T00:00:00+00:00"  # same weights -> same bytes, so graphs can be compared
HAZE_SIDE = 256


def _state(model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def shared_digest(state: Mapping[str, np.ndarray], exclude_blocks: Sequence[str]) -> str:
    """sha256 over (key, dtype, shape, bytes) of every tensor not inside ``exclude_blocks``."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if any(key.startswith(block + ".") for block in exclude_blocks):
            continue
        arr = np.ascontiguousarray(state[key])
        digest.update(f"{key}|{arr.dtype}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _load_adapter(folder: Path) -> tuple[dict[str, Any], Any]:
    from dehazekit.lora import read_adapter_info
    from dehazekit.models import load_model

    info = read_adapter_info(folder)
    if not (folder / "model.safetensors").is_file():
        raise ModelFileError.build(
            "adapter folder has no merged model",
            got=str(folder),
            expected="model.safetensors + model.json (written by `dehazekit adapt`)",
        )
    return info, load_model(folder)


def _check_same_base(name: str, info: dict[str, Any], model: Any, base: Any, base_state: dict) -> str:
    if model.backbone_name != base.backbone_name or dict(model.backbone_config) != dict(base.backbone_config):
        raise ConfigError.build(
            f"adapter {name} is for another backbone than the base",
            got=(model.backbone_name, dict(model.backbone_config)),
            expected=(base.backbone_name, dict(base.backbone_config)),
            fix="build one bank per base model",
        )
    blocks = list(info["blocks"])
    ours, theirs = shared_digest(_state(model), blocks), shared_digest(base_state, blocks)
    if ours != theirs:
        raise ConfigError.build(
            f"adapter {name} was not adapted from this base model",
            got=f"weights outside its blocks hash to {ours[:12]}",
            expected=theirs[:12],
            fix="pass --base with the model the adapters were made from",
        )
    return ours


def _export(model: Any, path: Path) -> onnx.ModelProto:
    from dehazekit.exporters.onnx_export import export_onnx

    export_onnx(model, path, meta_fields={"created_at": FIXED_CREATED_AT})
    return onnx.load(str(path))


def diff_initializers(base: onnx.ModelProto, other: onnx.ModelProto, name: str) -> dict[str, np.ndarray]:
    """Initializers of ``other`` that differ from ``base``; the graphs must match otherwise."""
    if [n.SerializeToString() for n in base.graph.node] != [n.SerializeToString() for n in other.graph.node]:
        raise ExportError.build(
            f"adapter {name} exports to a different graph than the base",
            fix="adapters of one bank must share backbone and config",
        )
    ours = {t.name: t for t in base.graph.initializer}
    theirs = {t.name: t for t in other.graph.initializer}
    if set(ours) != set(theirs):
        raise ExportError.build(
            f"adapter {name} has other initializers than the base", got=sorted(set(ours) ^ set(theirs))[:5]
        )
    changed = {}
    for key, tensor in theirs.items():
        if tensor.SerializeToString() != ours[key].SerializeToString():
            changed[key] = numpy_helper.to_array(tensor)
    return changed


def make_overridable(proto: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """List ``names`` (initializers) as graph inputs too: onnxruntime then accepts them as feeds."""
    inits = {t.name: t for t in proto.graph.initializer}
    present = {i.name for i in proto.graph.input}
    for key in sorted(names):
        if key not in present:
            t = inits[key]
            proto.graph.input.append(onnx.helper.make_tensor_value_info(key, t.data_type, list(t.dims)))
    return proto


def _signature(info: dict[str, Any], folder: Path, given: float | None) -> float | None:
    """Mean haze score of the images the adapter was made on (from its run report), or ``given``."""
    if given is not None:
        return float(given)
    summary = folder / "report" / "summary.json"
    if not summary.is_file():
        return None
    from dehazekit.data.images import list_images, read_rgb_uint8
    from dehazekit.runtimes.routing import haze_score

    source = json.loads(summary.read_text()).get("data", {}).get("source")
    try:
        files = list_images(Path(source), "adapter images") if source else []
    except DehazeKitError as exc:  # the images moved since adaptation: routing then needs --haze
        log.warning("haze signature of %s unavailable (%s); pass --haze", folder, exc)
        return None
    scores = [haze_score(read_rgb_uint8(f, HAZE_SIDE)) for f in files]
    return float(np.mean(scores)) if scores else None


def parse_named(paths: Sequence[str]) -> list[tuple[str, Path]]:
    """'NAME=DIR' or 'DIR' (name = folder name); names must be unique and not 'base'."""
    named = []
    for text in paths:
        name, sep, folder = text.partition("=")
        named.append((name, Path(folder)) if sep else (Path(text).name, Path(text)))
    names = [n for n, _ in named]
    if len(set(names)) != len(names) or "base" in names:
        raise ConfigError.build(
            "adapter names must be unique and not 'base'", got=names, fix="name them: NAME=DIR"
        )
    return named


def build_bank(
    adapters: Sequence[str],
    out: str | Path,
    *,
    base: str | Path = WEIGHTS_SYNTHETIC,  # where adapt starts, so where its adapters come from
    haze: Mapping[str, float] | None = None,
    force: bool = False,
) -> Path:
    """Write the bank folder ``out`` (atomically: built beside it, then renamed). Returns ``out``."""
    from dehazekit.models import load_model

    out, haze = Path(out), dict(haze or {})
    if out.exists() and not force:
        raise ConfigError.build("bank folder exists", got=str(out), fix="pass --force or another --out")
    named = parse_named(adapters)
    base_path = bundled_model_dir(str(base)) if str(base) in BUNDLED_MODELS else Path(base)
    _refuse_replacing_inputs(out, [folder for _, folder in named] + [base_path])
    base_model = load_model(base_path)
    base_state = _state(base_model)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        manifest = _write_bank(work, named, base_model, base_state, base_path, haze)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        work.chmod(0o755)  # mkdtemp makes it private; a bank is an ordinary artifact folder
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _refuse_replacing_inputs(out: Path, inputs: Sequence[Path]) -> None:
    """``--force`` replaces the whole ``out`` folder: it must be neither an input nor hold one."""
    real_out = out.resolve()
    for given in inputs:
        real = Path(given).resolve()
        if real == real_out or real.is_relative_to(real_out):
            raise OutputError.build(
                "the bank folder would replace an input",
                got=f"--out {out} holds {given}",
                fix="choose another --out (inputs are never overwritten)",
            )


def _write_bank(
    work: Path,
    named: list[tuple[str, Path]],
    base_model: Any,
    base_state: dict,
    base_path: Path,
    haze: dict[str, float],
) -> dict[str, Any]:
    (work / "adapters").mkdir()
    base_proto = _export(base_model, work / "tmp_base.onnx")
    entries, overrides = {}, {}
    for name, folder in named:
        info, model = _load_adapter(folder)
        shared = _check_same_base(name, info, model, base_model, base_state)
        overrides[name] = diff_initializers(base_proto, _export(model, work / "tmp_adapter.onnx"), name)
        outside = [k for k in overrides[name] if not any(k.startswith(b + ".") for b in info["blocks"])]
        if outside:
            log.warning("adapter %s changes initializers outside its blocks: %s", name, outside[:5])
        entries[name] = {
            "source": str(folder.resolve()),
            "blocks": list(info["blocks"]),
            "adapter_digest": info.get("digest"),
            "shared_digest": shared,
            "initializers": sorted(overrides[name]),
            "haze": _signature(info, folder, haze.get(name)),
        }
        log.info("adapter %s: %d blocks, %d initializers", name, len(info["blocks"]), len(overrides[name]))
    union = sorted({k for o in overrides.values() for k in o})
    inits = {t.name: numpy_helper.to_array(t) for t in base_proto.graph.initializer}
    overrides["base"] = {k: inits[k] for k in union}
    entries["base"] = {"source": str(base_path), "blocks": [], "initializers": union, "haze": None}
    for name, arrays in overrides.items():
        path = work / adapter_file(name)
        np.savez(path, **arrays)
        entries[name].update(
            file=adapter_file(name),
            bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    onnx.save(make_overridable(base_proto, union), str(work / "base.onnx"))
    for tmp in work.glob("tmp_*.onnx"):
        tmp.unlink()
    return {
        "format": BANK_FORMAT,
        "backbone": base_model.backbone_name,
        "base_digest": shared_digest(base_state, []),
        "base_onnx": "base.onnx",
        "base_onnx_bytes": (work / "base.onnx").stat().st_size,
        "overridable": union,
        "adapters": entries,
    }


def build_bank_engine(
    bank_dir: str | Path,
    *,
    workspace_gib: float = 4.0,
    min_shape: Any = None,
    opt_shape: Any = None,
    max_shape: Any = None,
) -> Path:
    """Build ``BANK_DIR/base.engine`` (+ .json ModelMeta) from base.onnx with BuilderFlag.REFIT, so
    the runtime can refit it with any adapter of the bank (runtimes.bank_trt); fp32 weights."""
    from dehazekit.exporters import tensorrt_build as tb
    from dehazekit.exporters.onnx_export import INPUT_NAME, read_meta
    from dehazekit.runtimes.bank import Bank
    from dehazekit.runtimes.bank_trt import ENGINE
    from dehazekit.runtimes.io_utils import atomic_write_bytes

    bank = Bank(bank_dir)
    meta = read_meta(bank.base_onnx)
    profile = tb.ShapeProfile.for_meta(meta, min_shape, opt_shape, max_shape)
    trt = tb._import_tensorrt()
    generation = tb.api_generation(trt.__version__)
    plan = tb.plan_precision(generation, meta.precision, fp16=False)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = tb._parse_network(trt, builder, logger, bank.base_onnx, plan, generation)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.set_flag(trt.BuilderFlag.REFIT)  # weights stay replaceable: one engine serves every adapter
    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError.build("TensorRT bank engine build failed", fix="see the TensorRT log above")
    engine = bank.folder / ENGINE
    atomic_write_bytes(engine, bytes(memoryview(serialized)))
    meta.save(engine.with_name(engine.name + ".json"))
    return engine
