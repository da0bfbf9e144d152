"""Synthetic haze, paired datasets and image IO helpers."""

from dehazekit.data.haze import PRESETS, HazeConfig, get_preset, pseudo_depth, synthesize

__all__ = ["PRESETS", "HazeConfig", "get_preset", "pseudo_depth", "synthesize"]
