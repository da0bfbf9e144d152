"""Where an export writes: beside its model by default, or ``out``; never over one of its inputs.

A small local guard: the shared output-vs-input guard for every command belongs in the runtimes
media/io layer (issue 11); until it lands there, export checks its own outputs here.
"""

from __future__ import annotations

import os
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


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse, before any work, an output that is (or resolves to) one of the inputs."""
    sources = [Path(p) for p in inputs]
    for target in outputs:
        for source in sources:
            if _same(target, source) or target.resolve() == source.resolve():
                raise ConfigError.build(
                    "output would overwrite an input",
                    got=f"{target} is the input {source}",
                    fix="pass --out with a different folder or .onnx name (inputs are never overwritten)",
                )


def check_writable(folder: Path) -> None:
    """The nearest existing parent of ``folder`` must be writable (checked before any work)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise ConfigError.build(
            "output folder is not writable", got=str(folder), fix="pass --out DIR (a folder you can write to)"
        )
