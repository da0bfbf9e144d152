"""Unsupervised objectives (h2c: CLIP haze-to-clear; offline = rehaze: re-haze self-training; dcp: dark
channel; aircons / airjoint: airlight-consistent brightness, a term to mix with rehaze)."""

# Built-ins register themselves on import (open_clip itself is imported only when h2c is built).
from dehazekit.objectives import airlight, dcp, h2c, offline, rehaze  # noqa: F401
from dehazekit.objectives.base import (
    attach_network,
    create_objective,
    list_objectives,
    parse_objective_spec,
    register_objective,
    remember_inputs,
)

__all__ = [
    "attach_network",
    "create_objective",
    "list_objectives",
    "parse_objective_spec",
    "register_objective",
    "remember_inputs",
]
