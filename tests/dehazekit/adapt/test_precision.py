"""adapt under mixed precision: bf16 autocast on CPU here, CUDA autocast under the gpu marker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def adapt_once(hazy_dir: Path, out: Path, precision: str, device: str = "cpu"):
    from dehazekit.adapt import AdaptConfig, adapt

    config = AdaptConfig(
        objective="dcp",
        search_steps=4,
        finetune_steps=3,
        batch_size=2,
        size=32,
        seed=0,
        checkpoint_every=0,
        preview_count=2,
        out=str(out),
        lr_w=1e-3,
        lr_alpha=1e-2,
        device=device,
        precision=precision,
        weights="random",
    )
    return adapt(hazy_dir, "tiny-gunet", config)


def test_bf16_adaptation_matches_fp32_within_tolerance(hazy_dir: Path, tmp_path: Path):
    """Stated tolerance: same selection, merged outputs within 0.05 (on [0, 1]) of the fp32 run."""
    from dehazekit.backbones import forward_padded
    from dehazekit.models import load_model

    fp32 = adapt_once(hazy_dir, tmp_path / "fp32", "fp32")
    bf16 = adapt_once(hazy_dir, tmp_path / "bf16", "bf16")
    assert sorted(bf16.selected_blocks) == sorted(fp32.selected_blocks)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = forward_padded(load_model(tmp_path / "fp32"), x)
        b = forward_padded(load_model(tmp_path / "bf16"), x)
    assert float((a - b).abs().max()) < 0.05
    assert all(p.dtype == torch.float32 for p in load_model(tmp_path / "bf16").parameters())


@pytest.mark.gpu
def test_cuda_bf16_adaptation_matches_cpu_fp32(hazy_dir: Path, tmp_path: Path):
    from dehazekit.backbones import forward_padded
    from dehazekit.models import load_model

    cpu = adapt_once(hazy_dir, tmp_path / "cpu", "fp32", "cpu")
    gpu = adapt_once(hazy_dir, tmp_path / "gpu", "auto", "cuda")
    assert sorted(gpu.selected_blocks) == sorted(cpu.selected_blocks)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = forward_padded(load_model(tmp_path / "cpu"), x)
        b = forward_padded(load_model(tmp_path / "gpu"), x)
    assert float((a - b).abs().max()) < 0.05
