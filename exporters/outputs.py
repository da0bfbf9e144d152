"""Where an export writes: beside its model by default, or ``out``; never over one of its inputs.

The rule itself is the shared one of the media layer (``runtimes.media.refuse_overwriting_inputs``,
``writable_check``); this module only knows which files an export reads and writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dehazekit.runtimes.errors import ConfigError

MODEL_WEIGHTS, MODEL_META = "model.safetensors", "model.json"


@dataclass(frozen=True)
class OutputPlan:
    """Every file an export may write (all beside each other)."""

    onnx: Path
    parity: Path
    engine: Path
    engine_parity: Path

    @property
    def files(self) -> list[Path]:
        engine_json = self.engine.with_name(self.engine.name + ".json")
        return [self.onnx, self.parity, self.engine, engine_json, self.engine_parity]


def source_files(model: str | Path | None, default_dir: Path) -> list[Path]:
    """The files an export reads from disk for ``model`` (a folder, a weights file, or None = bundled)."""
    if model is None:
        return [default_dir / MODEL_WEIGHTS, default_dir / MODEL_META]
    path = Path(model)
    if path.is_dir():
        return [path / MODEL_WEIGHTS, path / MODEL_META]
    return [path, path.with_suffix(".json"), path.parent / MODEL_META]


def plan_outputs(
    base_dir: Path | None, out: str | Path | None, fp16: bool, stem: str = "model"
) -> OutputPlan:
    """``out`` is a folder or a ``.onnx`` path; without it the files go into ``base_dir`` (the model's)."""
    name = f"{stem}.fp16" if fp16 else stem
    if out is None:
        if base_dir is None:
            raise ConfigError.build(
                "no output location: the model is not a file (random weights or an in-memory module)",
                fix="pass --out DIR or --out PATH.onnx (out= in Python)",
            )
        onnx = base_dir / f"{name}.onnx"
    else:
        target = Path(out)
        if target.suffix.lower() == ".onnx":
            onnx = target
        elif target.suffix and not target.is_dir():
            raise ConfigError.build(
                "--out must be a folder or a .onnx file", got=str(target), fix=f"e.g. --out {target.parent}"
            )
        else:
            onnx = target / f"{name}.onnx"
    base = onnx.with_suffix("")
    return OutputPlan(
        onnx=onnx,
        parity=base.with_name(base.name + ".parity.json"),
        engine=base.with_name(base.name + ".engine"),
        engine_parity=base.with_name(base.name + ".engine.parity.json"),
    )


def refuse_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Raise OutputError before any work if an output is (or resolves to) one of the inputs."""
    from dehazekit.runtimes.media import refuse_overwriting_inputs

    refuse_overwriting_inputs(outputs, inputs, "--out")


def check_writable(folder: Path) -> None:
    """Fail early, one line naming the folder, when it cannot be created or written."""
    from dehazekit.runtimes.media import writable_check

    writable_check(folder)
