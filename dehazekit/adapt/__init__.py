"""BiLaLoRA adaptation pipeline: data, config, checkpoints, reports and the ``adapt`` entry point."""
from dehazekit.adapt.api import AdaptResult, adapt
from dehazekit.adapt.config import AdaptConfig
from dehazekit.adapt.data import UnpairedHazy

__all__ = ["AdaptConfig", "AdaptResult", "UnpairedHazy", "adapt"]
