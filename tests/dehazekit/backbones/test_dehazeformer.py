"""DehazeFormer: tiny forward at odd sizes, window partition, LoRA candidates, checkpoint unwrapping,
ONNX export with a dynamic batch (faithfulness to the authors' numbers lives in test_compat.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dehazekit.backbones import candidate_blocks, create_backbone, get_spec, load_weights
from dehazekit.backbones.dehazeformer import relative_positions, window_partition, window_reverse
from tests.dehazekit.backbones.helpers import export_dynamic_onnx


def _jitter(model: nn.Module, scale: float = 0.05) -> nn.Module:
    # Random perturbation of every weight so attention, norms and fusions all move the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 19, 33), (1, 3, 37, 50)])
def test_tiny_forward_keeps_any_size(shape):
    model = create_backbone("tiny-dehazeformer").eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_min_size_is_honest():
    # Every size from min_size up runs (internal window padding); a bit below it, reflect padding
    # inside the 1/4-scale windows runs out of pixels.
    model = create_backbone("tiny-dehazeformer").eval()
    min_size = get_spec("tiny-dehazeformer").min_size
    with torch.no_grad():
        for size in range(min_size, min_size + 9):
            assert model(torch.rand(1, 3, size, 18)).shape[-2:] == (size, 18)
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 3, min_size - 4, 18))


def test_batch_items_are_independent():
    # The batch dimension is inferred (-1) inside window partition/reverse: items must not mix.
    model = _jitter(create_backbone("tiny-dehazeformer"))
    x = torch.rand(3, 3, 24, 40)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_window_partition_round_trip():
    x = torch.randn(2, 16, 24, 5)
    windows = window_partition(x, 8)
    assert windows.shape == (2 * 2 * 3, 64, 5)
    # First window of the second image is its top-left 8x8 block, row-major.
    assert torch.equal(windows[6], x[1, :8, :8].reshape(64, 5))
    assert torch.equal(window_reverse(windows, 8, 16, 24), x)


def test_relative_positions_are_log_spaced():
    rel = relative_positions(3)
    assert rel.shape == (9, 9, 2)
    # token 0 is (0, 0), token 8 is (2, 2): offset (-2, -2) -> -log(3)
    assert torch.allclose(rel[0, 8], torch.full((2,), -torch.log(torch.tensor(3.0))))
    assert torch.equal(rel[4, 4], torch.zeros(2))


def test_relative_positions_equal_the_authors_buffer(compat_dir):
    from safetensors.torch import load_file

    stored = load_file(str(compat_dir / "dehazeformer" / "dehazeformer_t.strong.golden.safetensors"))
    theirs = stored["model.layer3.blocks.0.attn.attn.relative_positions"]
    assert torch.allclose(relative_positions(8), theirs, atol=1e-7)


def test_candidates_and_exclusions():
    model = create_backbone("dehazeformer-t")
    spec = get_spec("dehazeformer-t")
    blocks = candidate_blocks(model)
    assert len(blocks) == 4 + 4 + 4 + 2 + 2
    assert blocks[0] == "layer1.blocks.0" and blocks[-1] == "layer5.blocks.1"
    for block_path in blocks:
        block = model.get_submodule(block_path)
        kept = {
            name
            for name, m in block.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not spec.exclude(f"{block_path}.{name}", m)
        }
        expected = {"attn.V", "attn.proj", "mlp.mlp.0", "mlp.mlp.2"}
        if block.use_attn:
            expected.add("attn.QK")
        assert kept == expected, block_path
    # Never the depthwise reflect conv, the RescaleNorm meta convs or the position-bias MLP.
    attn_block = "layer3.blocks.0"
    for name in ("attn.conv", "norm1.meta1", "norm1.meta2", "attn.attn.meta.0", "attn.attn.meta.2"):
        module = model.get_submodule(f"{attn_block}.{name}")
        assert spec.exclude(f"{attn_block}.{name}", module), name
        assert spec.exclude(name, module), name  # block-relative names too


def test_official_checkpoint_wrapper_loads(tmp_path):
    # The authors save {'state_dict': ...} from DataParallel ('module.' prefix).
    source = _jitter(create_backbone("tiny-dehazeformer"))
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "dehazeformer-t.pth"
    torch.save(wrapped, path)
    fresh = load_weights(create_backbone("tiny-dehazeformer"), path).eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(fresh(x), source(x))


def test_onnx_export_keeps_dynamic_batch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _jitter(create_backbone("tiny-dehazeformer"))
    path = tmp_path / "tiny.onnx"
    export_dynamic_onnx(model, path, (1, 3, 32, 48))
    import onnx

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"If", "Loop"}, "control flow would block the fp16 conversion"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 40, 56), (3, 3, 37, 51)]:  # other batch, other (also non-multiple) size
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"hazy": x.numpy()})[0]
        assert got.shape == expected.shape
        assert float(abs(got - expected).max()) <= 1e-4


def test_lora_merge_parity_and_one_search_and_finetune_step():
    from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, select_top_k
    from dehazekit.lora import inject_lora, lora_layers, lora_parameters, merge_lora
    from dehazekit.objectives import create_objective

    model = _jitter(create_backbone("tiny-dehazeformer"))
    keys = list(model.state_dict())
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        y_base = model(x)
    gates = inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    # 7 blocks x (V, proj, mlp.0, mlp.2) + QK in the 4 attention blocks (layer2, layer3).
    assert len(gates) == 7 and len(list(lora_layers(model))) == 7 * 4 + 4
    objective = create_objective("dcp")
    search = BilevelSearch(model, objective, SearchConfig(lr_w=1e-3, lr_alpha=0.05))
    history = search.run(iter([(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20))]), steps=1)
    assert torch.isfinite(torch.tensor(history[0]["lower_loss"]))
    tuner = FineTuner(model, objective, select_top_k(search.gate_values(), k=2), FinetuneConfig(lr=1e-3))
    assert torch.isfinite(torch.tensor(tuner.step(torch.rand(1, 3, 20, 20))["loss"]))
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if name.endswith("lora_B"):
                p.normal_(std=0.1)
        y_lora = model(x)
        assert not torch.allclose(y_lora, y_base, atol=1e-4)  # the adapters really act
        merged = merge_lora(model)
        assert list(merged.state_dict()) == keys
        assert torch.allclose(merged(x), y_lora, atol=1e-5)
