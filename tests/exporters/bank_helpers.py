"""Tiny base model + LoRA adapters on disk, shaped like `dehazekit adapt` output, for bank tests."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

BACKBONE = "tiny-gunet"


def make_base(folder: Path, seed: int = 0) -> torch.nn.Module:
    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    torch.manual_seed(seed)
    model = create_backbone(BACKBONE).eval()
    save_model(model, folder)
    return model


def make_adapter(base: torch.nn.Module, folder: Path, blocks_at: tuple[int, ...], seed: int) -> Path:
    """adapter.json/.safetensors + merged model.safetensors/.json; LoRA on candidate blocks ``blocks_at``."""
    from dehazekit.adapt.backbone import candidate_list
    from dehazekit.lora import adapter_digest, inject_lora, merge_lora, save_adapter
    from dehazekit.models import save_model

    model = copy.deepcopy(base)
    candidates = candidate_list(model, "auto")
    blocks = [candidates[i] for i in blocks_at]
    torch.manual_seed(seed)
    inject_lora(model, blocks, rank=2, lora_alpha=4.0, gated=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.3)
    save_adapter(model, folder, info={"objective": "dcp", "seed": seed})
    merge_lora(model, safe=True)
    save_model(model, folder, adapter_digest=adapter_digest(folder), selected_blocks=blocks)
    return folder
