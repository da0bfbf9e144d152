"""dehazekit: adapt dehazing networks to real haze (BiLaLoRA), export them, run them.

Heavy submodules load lazily so ``import dehazekit`` and ``dehazekit --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from dehazekit.runtimes import __version__

_LAZY = {
    "create_backbone": "dehazekit.backbones",
    "list_backbones": "dehazekit.backbones",
    "load_weights": "dehazekit.backbones",
    "load_model": "dehazekit.models",
    "save_model": "dehazekit.models",
    "adapt": "dehazekit.adapt",
    "AdaptConfig": "dehazekit.adapt",
    "AdaptResult": "dehazekit.adapt",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dehazekit' has no attribute {name!r}")
