"""Test helpers shared by the per-family backbone tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


def export_dynamic_onnx(model: nn.Module, path: Path, trace_shape: tuple[int, int, int, int]) -> Path:
    """Trace ``model`` to ONNX (opset 17, TorchScript exporter) with dynamic batch/height/width."""
    torch.onnx.export(
        model,
        (torch.rand(*trace_shape),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["hazy"],
        output_names=["clear"],
        dynamic_axes={"hazy": DYNAMIC_AXES, "clear": DYNAMIC_AXES},
    )
    return path


def check_lora_merge(model: nn.Module, x: torch.Tensor, reference: torch.Tensor) -> nn.Module:
    """B = 0 leaves ``reference`` bit-identical; random B changes it; merging reproduces the change.

    ``model`` already holds injected LoRA; returns the merged model.
    """
    from dehazekit.lora import merge_lora

    with torch.no_grad():
        assert torch.equal(model(x), reference)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
        adapted = model(x)
        merged = merge_lora(model)
        assert torch.allclose(merged(x), adapted, atol=1e-5)
    assert not torch.allclose(adapted, reference)
    return merged
