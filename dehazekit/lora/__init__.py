"""Gated LoRA for dehazing backbones: layers, per-block gates, injection, safe merge, adapter files."""

from dehazekit.lora.adapter import (
    ADAPTER_JSON,
    ADAPTER_TENSORS,
    adapter_digest,
    adapter_tensors,
    load_adapter,
    read_adapter_info,
    save_adapter,
)
from dehazekit.lora.gates import GATE_ATTR, Gate
from dehazekit.lora.inject import (
    gate_parameters,
    gate_values,
    gates_of,
    has_lora,
    inject_lora,
    lora_blocks,
    lora_layers,
    lora_parameters,
    merge_lora,
    remove_gates,
    remove_lora,
    resolve_blocks,
    scale_lora,
    unmerge_lora,
)
from dehazekit.lora.layers import LoRAConv2d, LoRALayer, LoRALinear

__all__ = [
    "ADAPTER_JSON",
    "ADAPTER_TENSORS",
    "GATE_ATTR",
    "Gate",
    "LoRAConv2d",
    "LoRALayer",
    "LoRALinear",
    "adapter_digest",
    "adapter_tensors",
    "gate_parameters",
    "gate_values",
    "gates_of",
    "has_lora",
    "inject_lora",
    "load_adapter",
    "lora_blocks",
    "lora_layers",
    "lora_parameters",
    "merge_lora",
    "read_adapter_info",
    "remove_gates",
    "remove_lora",
    "resolve_blocks",
    "scale_lora",
    "save_adapter",
    "unmerge_lora",
]
