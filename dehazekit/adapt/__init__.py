"""BiLaLoRA adaptation pipeline: data, config, checkpoints, reports and the ``adapt`` entry point.

``AdaptConfig`` imports without torch (the CLI validates arguments before torch loads); the rest
loads on first use.
"""

import importlib
import sys
import types
from typing import Any

from dehazekit.adapt.config import AdaptConfig

__all__ = ["AdaptConfig", "AdaptResult", "UnpairedHazy", "adapt"]
_LAZY = {
    "AdaptResult": "dehazekit.adapt.api",
    "adapt": "dehazekit.adapt.api",
    "UnpairedHazy": "dehazekit.adapt.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``dehazekit.adapt`` is both this package and the function: once the package is imported,
    Python binds the name on ``dehazekit`` to the package, so calling it must still run adapt()."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from dehazekit.adapt.api import adapt

        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
