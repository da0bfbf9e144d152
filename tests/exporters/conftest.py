"""Shared fixtures for exporter tests: every registered tiny backbone, exported once per session."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from dehazekit.backbones import create_backbone, get_spec, list_backbones


def tiny_backbones(exportable: bool = True) -> list[str]:
    return [n for n in list_backbones() if get_spec(n).tiny and get_spec(n).exportable == exportable]


class ExportCache:
    """fp32 export of each tiny backbone (traced once), its fp16 conversion, and the torch model."""

    def __init__(self, root: Path) -> None:
        self.root, self.models, self.paths = root, {}, {}

    def model(self, name: str) -> torch.nn.Module:
        if name not in self.models:
            torch.manual_seed(0)
            self.models[name] = create_backbone(name).eval()
        return self.models[name]

    def onnx(self, name: str, precision: str = "fp32") -> Path:
        from dehazekit.exporters.fp16 import convert_fp16
        from dehazekit.exporters.onnx_export import export_onnx

        key = (name, precision)
        if key not in self.paths:
            fp32 = self.root / f"{name}.onnx"
            if (name, "fp32") not in self.paths:
                self.paths[(name, "fp32")] = export_onnx(self.model(name), fp32)
            if precision == "fp16":
                out = self.root / f"{name}.fp16.onnx"
                onnx.save(convert_fp16(onnx.load(str(fp32))), str(out))
                self.paths[key] = out
        return self.paths[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("exports"))
