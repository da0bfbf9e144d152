"""Unsupervised objectives (h2c: CLIP haze-to-clear; dcp: dark-channel prior + fidelity)."""
from dehazekit.objectives.base import create_objective, list_objectives, parse_objective_spec, register_objective

__all__ = ["create_objective", "list_objectives", "parse_objective_spec", "register_objective"]
