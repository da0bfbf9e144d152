"""DeHamer: export-safe pieces against their plain forms, tiny forward, pruning of the never-used
parameters (count, outputs, gradients), LoRA candidates, checkpoint unwrapping, ONNX parity.
Full size only on the meta device (its key list is checked in test_compat.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones import (
    candidate_blocks,
    count_parameters,
    create_backbone,
    forward_padded,
    get_spec,
    load_weights,
    read_state_dict,
)
from dehazekit.backbones.dehamer import (
    FULL_PARAMS,
    PRUNED_PARAMS,
    adaptive_avg_pool,
    prune_unused,
    unused_module_paths,
)
from dehazekit.backbones.dehamer_layers import dark_channel, shifted_window_mask
from tests.dehazekit.backbones.helpers import export_dynamic_onnx


def _jitter(model: nn.Module, scale: float = 0.05) -> nn.Module:
    # Perturb every trainable weight so each branch visibly moves the output.
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * scale)
    return model.eval()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 9, 13])
@pytest.mark.parametrize("bins", [1, 2, 3, 4])
def test_adaptive_pool_matches_torch_on_any_size(size, bins):
    x = torch.randn(2, 3, size, size + 3)
    assert torch.allclose(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins), atol=1e-6)


def test_dark_channel_matches_unfold_form():
    x = torch.rand(2, 3, 20, 27)
    padded = F.pad(x.amin(dim=1, keepdim=True), (7, 7, 7, 7), mode="reflect")
    reference = F.unfold(padded, 15).amin(dim=1).view(2, 1, 20, 27)
    assert torch.equal(dark_channel(x), reference)


@pytest.mark.parametrize("hp,wp,ws", [(14, 21, 7), (8, 8, 4), (12, 4, 4)])
def test_shifted_window_mask_matches_region_painting(hp, wp, ws):
    shift = ws // 2
    regions = torch.zeros(hp, wp)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, wsl in enumerate(cuts):
            regions[hs, wsl] = 3 * i + j
    windows = regions.reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = windows[:, None, :] - windows[:, :, None]
    expected = torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))
    assert torch.equal(shifted_window_mask(hp, wp, ws, shift, torch.device("cpu")), expected)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 48, 80)])
def test_tiny_forward_shapes(shape):
    model = create_backbone("tiny-dehamer").eval()
    with torch.no_grad():
        y = model(torch.rand(*shape))
    assert y.shape == shape and torch.isfinite(y).all()


def test_tiny_forward_padded_odd_size():
    model = create_backbone("tiny-dehamer").eval()
    x = torch.rand(1, 3, 37, 51)
    with torch.no_grad():
        assert forward_padded(model, x).shape == x.shape


def test_full_size_counts_on_meta_device():
    assert count_parameters("dehamer") == FULL_PARAMS == 132_501_638
    assert count_parameters("dehamer", prune_unused=True) == PRUNED_PARAMS
    assert f"{PRUNED_PARAMS:,}" in get_spec("dehamer").description
    assert FULL_PARAMS - PRUNED_PARAMS > 100_000_000  # the "about 103 M never used"


def test_pruning_keeps_outputs_and_drops_exactly_the_unused():
    model = _jitter(create_backbone("tiny-dehamer"))
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        before = model(x)
    full_state = model.state_dict()
    unused = unused_module_paths(model)
    unused_count = sum(p.numel() for path in unused for p in model.get_submodule(path).parameters())
    full_count = sum(p.numel() for p in model.parameters())

    prune_unused(model)
    assert sum(p.numel() for p in model.parameters()) == full_count - unused_count
    assert model.backbone_config["prune_unused"] is True
    with torch.no_grad():
        assert torch.equal(model(x), before)

    # A model built pruned accepts the full (official-layout) state_dict strictly.
    built = create_backbone("tiny-dehamer", prune_unused=True).eval()
    built.load_state_dict(full_state, strict=True)
    assert sum(p.numel() for p in built.parameters()) == full_count - unused_count
    with torch.no_grad():
        assert torch.equal(built(x), before)


def test_unused_parameters_get_no_gradient():
    # "Never used" checked by autograd on the full model: the pruned set is exactly the set of
    # trainable parameters that receive no gradient.
    model = create_backbone("tiny-dehamer").train()
    model(torch.rand(1, 3, 32, 32)).square().mean().backward()
    no_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    unused = unused_module_paths(model)
    heads = tuple(f"{u}." for u in unused)
    in_unused = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(heads)}
    assert no_grad == in_unused and in_unused


def test_candidates_resolve_and_hold_lora_layers():
    model = create_backbone("tiny-dehamer")
    spec = get_spec("tiny-dehamer")
    blocks = candidate_blocks(model)
    assert blocks[:4] == ["E_block1", "E_block2", "E_block3", "E_block4"]
    assert len(blocks) == 4 + 6
    for path in blocks:
        block = model.get_submodule(path)
        kept = {
            name
            for name, m in block.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not spec.exclude(f"{path}.{name}", m)
        }
        if path.startswith("E_block"):
            assert kept == {"0", "2"}
        else:
            assert kept == {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"}


def test_dataparallel_checkpoint_loads_full_and_pruned(tmp_path):
    source = _jitter(create_backbone("tiny-dehamer"))
    path = tmp_path / "dehamer.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = source(x)
    full = load_weights(create_backbone("tiny-dehamer"), path).eval()
    # A model built pruned: its own filter drops the never-used keys before the strict comparison.
    pruned = create_backbone("tiny-dehamer", prune_unused=True).eval()
    load_weights(pruned, pruned.filter_checkpoint(read_state_dict(path)))
    with torch.no_grad():
        assert torch.equal(full(x), expected) and torch.equal(pruned(x), expected)


def test_pruned_after_loading_saves_and_reloads(tmp_path):
    from dehazekit.models import load_model, save_model

    source = _jitter(create_backbone("tiny-dehamer"))
    path = tmp_path / "official.pt"
    torch.save({"model": source.state_dict()}, path)
    model = prune_unused(load_weights(create_backbone("tiny-dehamer"), path)).eval()
    save_model(model, tmp_path / "saved")
    again = load_model(tmp_path / "saved")  # rebuilt pruned from model.json, loaded strictly
    assert again.backbone_config["prune_unused"] is True
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), source(x))


def test_onnx_export_dynamic_batch_and_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _jitter(create_backbone("tiny-dehamer", prune_unused=True))
    path = tmp_path / "tiny-dehamer.onnx"
    export_dynamic_onnx(model, path, (1, 3, 32, 48))
    import onnx

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"If", "Loop"}, "control flow would block the fp16 conversion"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # 80x48 -> 5x3 at 1/16 scale: pyramid bins 2, 3, 4 do not divide it.
    for shape in [(2, 3, 80, 48), (1, 3, 48, 112)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"hazy": x.numpy()})[0]
        assert got.shape == expected.shape
        assert float(abs(got - expected).max()) <= 1e-4 * max(1.0, float(abs(expected).max()))


def test_lora_merge_parity_and_one_search_and_finetune_step():
    from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, select_top_k
    from dehazekit.lora import inject_lora, lora_layers, lora_parameters, merge_lora
    from dehazekit.objectives import create_objective

    model = _jitter(create_backbone("tiny-dehamer", prune_unused=True))
    keys = list(model.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y_base = model(x)
    gates = inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    assert len(gates) == 10 and len(list(lora_layers(model))) == 4 * 2 + 6 * 4
    objective = create_objective("dcp")
    search = BilevelSearch(model, objective, SearchConfig(lr_w=1e-3, lr_alpha=0.05))
    history = search.run(iter([(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))]), steps=1)
    assert torch.isfinite(torch.tensor(history[0]["lower_loss"]))
    tuner = FineTuner(model, objective, select_top_k(search.gate_values(), k=3), FinetuneConfig(lr=1e-3))
    assert torch.isfinite(torch.tensor(tuner.step(torch.rand(1, 3, 32, 32))["loss"]))
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if name.endswith("lora_B"):
                p.normal_(std=0.1)
        y_lora = model.eval()(x)
        assert not torch.allclose(y_lora, y_base, atol=1e-4)  # the adapters really act
        merged = merge_lora(model)
        assert list(merged.state_dict()) == keys
        assert torch.allclose(merged(x), y_lora, atol=1e-5)


def test_full_checkpoint_loads_strictly_into_pruned_model(tmp_path):
    from dehazekit.backbones import create_backbone, load_weights

    full = create_backbone("tiny-dehamer").eval()
    path = tmp_path / "dehamer_full.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    pruned = load_weights(create_backbone("tiny-dehamer", prune_unused=True).eval(), path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(full(x), pruned(x))
