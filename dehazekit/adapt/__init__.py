"""BiLaLoRA adaptation pipeline: data, config, checkpoints, reports and the ``adapt`` entry point."""
import sys
import types

from dehazekit.adapt.api import AdaptResult, adapt
from dehazekit.adapt.config import AdaptConfig
from dehazekit.adapt.data import UnpairedHazy

__all__ = ["AdaptConfig", "AdaptResult", "UnpairedHazy", "adapt"]


class _CallableModule(types.ModuleType):
    """``dehazekit.adapt`` is both this package and the function: once the package is imported,
    Python binds the name on ``dehazekit`` to the package, so calling it must still run adapt()."""

    def __call__(self, *args, **kwargs) -> AdaptResult:
        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
