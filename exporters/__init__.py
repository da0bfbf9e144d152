"""Export: ``export(model, formats, ...) -> ExportResult`` (the checked pipeline) and its parts:
deploy preparation, ONNX (fp32/fp16), parity reports, TensorRT engines, the TRT operator lint.

Submodules load lazily so importing ``dehazekit.exporters`` does not pull in torch/onnx until a
function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export": "dehazekit.exporters.pipeline",
    "ExportResult": "dehazekit.exporters.pipeline",
    "ExportProgress": "dehazekit.exporters.pipeline",
    "ARGS": "dehazekit.exporters.formats",
    "to_deploy": "dehazekit.exporters.deploy",
    "export_onnx": "dehazekit.exporters.onnx_export",
    "read_meta": "dehazekit.exporters.onnx_export",
    "convert_fp16": "dehazekit.exporters.fp16",
    "verify": "dehazekit.exporters.verify",
    "ParityReport": "dehazekit.exporters.verify",
    "verify_engine": "dehazekit.exporters.verify",
    "Tolerance": "dehazekit.exporters.verify",
    "build_engine": "dehazekit.exporters.tensorrt_build",
    "ShapeProfile": "dehazekit.exporters.tensorrt_build",
    "lint_onnx": "dehazekit.exporters.trt_lint",
    "FORMATS": "dehazekit.exporters.formats",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dehazekit.exporters' has no attribute {name!r}")
