"""The export format table: formats, their suffixes, and which arguments each accepts.

One table drives three things: validation in ``dehazekit.exporters.export`` (an argument that none of the
requested formats accepts is refused before any work), the options of ``dehazekit export`` (flag, type,
default and help come from ``ARGS``), and the README/docs table (``formats_markdown``). Importing this
module is cheap (no torch/onnx), so the CLI can build its options from it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import ConfigError, UnknownNameError

OPSET_RANGE = (13, 20)  # TorchScript exporter support; TensorRT 10.0 parses opset 9..20


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    package: str | None  # optional dependency needed to produce it (None: always available)
    requires: tuple[str, ...]  # formats built first and kept (an engine is built from the ONNX)
    description: str


@dataclass(frozen=True)
class ExportArg:
    name: str
    type: type
    default: Any
    formats: frozenset[str]  # formats that accept it; empty = recognised but not supported yet
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx",
            ".onnx",
            None,
            (),
            "ONNX, dynamic batch/H/W, ModelMeta in metadata_props, parity-checked vs PyTorch; runs anywhere",
        ),
        ExportFormat(
            "engine",
            ".engine",
            "tensorrt",
            ("onnx",),
            "TensorRT engine + .engine.json sidecar; specific to one GPU model and TensorRT version",
        ),
    )
}

_BOTH, _ONNX, _TRT = frozenset({"onnx", "engine"}), frozenset({"onnx"}), frozenset({"engine"})
ARGS: dict[str, ExportArg] = {
    a.name: a
    for a in (
        ExportArg("fp16", bool, False, _BOTH, "fp16 weights/compute with fp32 input/output."),
        ExportArg("opset", int, 17, _ONNX, f"ONNX opset ({OPSET_RANGE[0]}..{OPSET_RANGE[1]})."),
        ExportArg("verify_images", Path, None, _ONNX, "Also check parity on these photos."),
        ExportArg("parity_size", int, 512, _ONNX, "Long side of the realistic-size parity inputs (0: off)."),
        ExportArg("force", bool, False, _BOTH, "Keep an artifact that fails the parity check."),
        ExportArg("min_shape", str, None, _TRT, "TensorRT profile min BxCxHxW (default 1x3x256x256)."),
        ExportArg("opt_shape", str, None, _TRT, "TensorRT profile opt BxCxHxW (default 720p)."),
        ExportArg("max_shape", str, None, _TRT, "TensorRT profile max BxCxHxW (default 1080p)."),
        ExportArg("workspace", float, 4.0, _TRT, "TensorRT workspace in GiB."),
        ExportArg("timing_cache", Path, None, _TRT, "TensorRT timing cache file (read and updated)."),
        ExportArg("builder_level", int, 3, _TRT, "TensorRT builder optimisation level 0..5."),
        ExportArg("int8", bool, False, frozenset(), "INT8 (needs calibration data; not supported yet)."),
    )
}


def resolve_formats(formats: str | Any) -> list[ExportFormat]:
    """Requested format names -> formats in build order, prerequisites added (engine -> onnx, engine)."""
    names = [formats] if isinstance(formats, str) else list(formats)
    if not names:
        raise ConfigError.build("no export format requested", expected=sorted(FORMATS))
    ordered: list[str] = []
    for name in names:
        if name not in FORMATS:
            close = difflib.get_close_matches(str(name), FORMATS, n=2)
            raise UnknownNameError.build(
                "unknown export format",
                got=name,
                expected=sorted(FORMATS),
                fix=f"did you mean {' or '.join(close)}?" if close else None,
            )
        for needed in (*FORMATS[name].requires, name):
            if needed not in ordered:
                ordered.append(needed)
    return [FORMATS[n] for n in sorted(ordered, key=list(FORMATS).index)]


def resolve_args(formats: list[ExportFormat], given: dict[str, Any]) -> dict[str, Any]:
    """All argument values (table defaults filled in); unknown or unsupported ones refused up front."""
    names = {f.name for f in formats}
    for key, value in given.items():
        arg = ARGS.get(key)
        if arg is None:
            close = difflib.get_close_matches(key, ARGS, n=2)
            raise ConfigError.build(
                "unknown export argument",
                got=key,
                expected=sorted(ARGS),
                fix=f"did you mean {' or '.join(close)}?" if close else None,
            )
        if value is None or value == arg.default or arg.formats & names:
            continue
        if not arg.formats:
            raise ConfigError.build(f"{arg.flag} is not supported", got=f"{arg.flag}={value}", fix=arg.help)
        wanted = " or ".join(sorted(arg.formats))
        raise ConfigError.build(
            f"{arg.flag} applies to the {wanted} format only",
            got=f"formats {sorted(names)}",
            fix="add --trt" if arg.formats == _TRT else f"request {wanted} or drop {arg.flag}",
        )
    values = {name: arg.default for name, arg in ARGS.items()}
    values.update({k: v for k, v in given.items() if v is not None})
    _check_values(values)
    return values


def _check_values(v: dict[str, Any]) -> None:
    if not OPSET_RANGE[0] <= int(v["opset"]) <= OPSET_RANGE[1]:
        raise ConfigError.build(
            "unsupported --opset", got=v["opset"], expected=f"{OPSET_RANGE[0]}..{OPSET_RANGE[1]}"
        )
    if not 0 < float(v["workspace"]) <= 1024:
        raise ConfigError.build("--workspace invalid", got=v["workspace"], expected="GiB in (0, 1024]")
    if int(v["builder_level"]) not in range(6):
        raise ConfigError.build("--builder-level invalid", got=v["builder_level"], expected="0..5")
    if int(v["parity_size"]) < 0:
        raise ConfigError.build("--parity-size invalid", got=v["parity_size"], expected="0 (off) or pixels")
    if v["verify_images"] is not None and not Path(v["verify_images"]).is_dir():
        raise ConfigError.build("--verify-images must be a folder of photos", got=str(v["verify_images"]))


def formats_markdown() -> str:
    """The README table: formats, then the arguments and which formats take them."""
    rows = ["| format | suffix | needs | what |", "|---|---|---|---|"]
    rows += [
        f"| `{f.name}` | `{f.suffix}` | {f.package or '-'} | {f.description} |" for f in FORMATS.values()
    ]
    rows += ["", "| argument (CLI flag) | default | formats | what |", "|---|---|---|---|"]
    for a in ARGS.values():
        default = "-" if a.default is None else f"`{a.default}`"
        where = ", ".join(sorted(a.formats)) or "not yet"
        rows.append(f"| `{a.name}` (`{a.flag}`) | {default} | {where} | {a.help} |")
    return "\n".join(rows)
