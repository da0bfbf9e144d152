"""Registered dehazing backbones. Importing this package registers every family."""

# Family modules register themselves on import; the order fixes nothing but keeps listings stable.
from dehazekit.backbones import convir, dea, dehamer, dehazeformer, gunet, msbdn  # noqa: F401
from dehazekit.backbones.padding import forward_padded, pad_to_multiple, padded_size
from dehazekit.backbones.registry import (
    BackboneSpec,
    candidate_blocks,
    count_parameters,
    create_backbone,
    get_spec,
    list_backbones,
    register_backbone,
    spec_of,
)
from dehazekit.backbones.weights import load_weights, read_state_dict

__all__ = [
    "BackboneSpec",
    "candidate_blocks",
    "count_parameters",
    "create_backbone",
    "get_spec",
    "list_backbones",
    "register_backbone",
    "spec_of",
    "forward_padded",
    "pad_to_multiple",
    "padded_size",
    "load_weights",
    "read_state_dict",
]
