"""Readers for ../shared/compat fixtures (key lists and strong goldens); see compat/README.md."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file


@lru_cache(maxsize=None)
def golden_seeded(compat_dir: Path):
    """Import compat/golden_seeded.py from ../shared (the README allows importing it from there)."""
    spec = importlib.util.spec_from_file_location("golden_seeded", compat_dir / "golden_seeded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def index(compat_dir: Path) -> dict:
    return json.loads((compat_dir / "index.json").read_text())


def read_keys(compat_dir: Path, file: str) -> dict:
    return json.loads((compat_dir / file).read_text())


def golden_weights(
    compat_dir: Path, stem: str, prefix: str = "model."
) -> tuple[dict[str, torch.Tensor], bool]:
    """Weights of a strong golden: stored ``<prefix><key>`` tensors, else regenerated from the fill table.

    Returns (state, complete): complete=False means entries outside the table keep constructor values
    and the caller must load with strict=False.
    """
    info = json.loads((compat_dir / f"{stem}.json").read_text())
    tensors = load_file(str(compat_dir / f"{stem}.safetensors"))
    stored = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if stored:
        return stored, True
    values = golden_seeded(compat_dir).seeded_values(info["fill_table"])
    for key, tensor in values.items():
        digest = hashlib.sha256(tensor.numpy().tobytes()).hexdigest()
        assert digest == info["entry_sha256"][key], f"regenerated weight {key} does not match its sha256"
    return values, False


def golden_cases(compat_dir: Path, stem: str) -> list[dict]:
    info = json.loads((compat_dir / f"{stem}.json").read_text())
    tensors = load_file(str(compat_dir / f"{stem}.safetensors"))
    cases = []
    for case in info["cases"]:
        entry = {"input": tensors[case["input_key"]]}
        if case.get("output_key"):
            entry["output"] = tensors[case["output_key"]]
        entry["extra"] = [tensors[k] for k in case.get("extra_output_keys") or []]
        entry["suffix"] = case["input_key"][len("input") :]
        cases.append(entry)
    return cases, tensors, info


def tolerance(golden: torch.Tensor) -> float:
    return 5e-5 * float(golden.abs().max())
