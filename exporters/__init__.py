"""Export: deploy preparation, ONNX (fp32/fp16), parity reports, TensorRT engines, the TRT operator lint.

Submodules load lazily so importing ``exporters`` does not pull in torch/onnx until a function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_deploy": "exporters.deploy",
    "export_onnx": "exporters.onnx_export",
    "read_meta": "exporters.onnx_export",
    "convert_fp16": "exporters.fp16",
    "verify": "exporters.verify",
    "ParityReport": "exporters.verify",
    "Tolerance": "exporters.verify",
    "build_engine": "exporters.tensorrt_build",
    "ShapeProfile": "exporters.tensorrt_build",
    "lint_onnx": "exporters.trt_lint",
    "FORMATS": "exporters.formats",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exporters' has no attribute {name!r}")
