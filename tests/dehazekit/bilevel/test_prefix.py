"""PrefixCache: replaying the frozen prefix gives the same loss and gradients as the full network, and
it notices (and stops serving) a stale or wrong cache."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from dehazekit.backbones import candidate_blocks, create_backbone, forward_padded
from dehazekit.bilevel import FinetuneConfig, FineTuner, PrefixCache
from dehazekit.lora import gates_of, inject_lora, lora_parameters, remove_lora
from dehazekit.objectives import attach_network, create_objective

TOL = 1e-6


def _stage2_model(backbone: str, pick: str) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """Frozen tiny backbone with (nonzero) LoRA on the picked candidate blocks only, as in Stage 2."""
    torch.manual_seed(0)
    model = create_backbone(backbone).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    blocks = candidate_blocks(model)
    selected = {
        "middle": [blocks[len(blocks) // 2]],
        "last": [blocks[-1]],
        "encoder+decoder": [blocks[1], blocks[-2]],
    }[pick]
    inject_lora(model, blocks, rank=2, gated=True)
    remove_lora(model, keep=selected)
    for gate in gates_of(model).values():
        gate.freeze()
    model.eval()
    w = lora_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name in w)
    with torch.no_grad():
        for name, p in w.items():
            if name.endswith("lora_B"):
                p.normal_(0, 0.1)  # B = 0 would make the selected blocks transparent
    return model, w


def _loss_and_grads(objective, batch, out, w, seed: int):
    torch.manual_seed(seed)  # rehaze draws a random transmission: same draw on both paths
    loss = objective(batch, out)
    return loss.detach(), torch.autograd.grad(loss, list(w.values()))


def _assert_same(a, b) -> None:
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert abs(float(loss_a - loss_b)) <= TOL
    assert max(float((x - y).abs().max()) for x, y in zip(grads_a, grads_b)) <= TOL


@pytest.mark.parametrize("backbone", ["tiny-gunet", "tiny-convir", "tiny-dea"])
@pytest.mark.parametrize("pick", ["middle", "last", "encoder+decoder"])
def test_replayed_prefix_gives_the_same_loss_and_gradients(backbone: str, pick: str) -> None:
    model, w = _stage2_model(backbone, pick)
    # offline = rehaze: it runs the network a second time on re-hazed crops, which must NOT be replayed
    objective = create_objective("offline")
    attach_network(objective, model)
    torch.manual_seed(1)
    batches = [torch.rand(2, 3, 32, 32) for _ in range(2)]
    cache = PrefixCache(model, batches)
    for step in range(2):
        for i, batch in enumerate(batches):
            cached = _loss_and_grads(objective, batch, cache(i), w, seed=10 * step + i)
            full = _loss_and_grads(objective, batch, forward_padded(model, batch), w, seed=10 * step + i)
            _assert_same(cached, full)
    summary = cache.summary()
    assert summary["enabled"], summary["reason"]
    assert summary["cached_calls"] > 0
    # batch 0: recorded, checked, replayed; batch 1: recorded; then both replayed
    assert (summary["recorded"], summary["replayed"], summary["full"]) == (2, 3, 0)
    # recording and replay patch module forwards only while they run: the model is left as it was
    assert not [name for name, m in model.named_modules() if "forward" in m.__dict__]


def test_frozen_weight_changed_after_caching_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    model, w = _stage2_model("tiny-gunet", "last")
    batches = [torch.rand(2, 3, 32, 32)]
    cache = PrefixCache(model, batches)
    cache(0)
    with torch.no_grad():
        model.inconv.proj.weight.mul_(1.5)  # a frozen prefix weight, changed in place
    assert torch.allclose(cache(0), forward_padded(model, batches[0]), atol=TOL, rtol=0)
    assert cache.stats["invalidated"] == 1
    # the same scenario with the staleness check switched off serves stale features: the check above
    # is what keeps it right
    stale = PrefixCache(model, batches)
    stale(0)
    monkeypatch.setattr(PrefixCache, "_check_state", lambda self: None)
    with torch.no_grad():
        model.inconv.proj.weight.mul_(1.5)
    assert not torch.allclose(stale(0), forward_padded(model, batches[0]), atol=1e-3)


def test_batch_modified_in_place_is_recorded_again() -> None:
    model, _ = _stage2_model("tiny-gunet", "middle")
    batches = [torch.rand(2, 3, 32, 32)]
    cache = PrefixCache(model, batches)
    cache(0)
    batches[0].mul_(0.5)  # e.g. an augmentation applied after caching
    assert torch.allclose(cache(0), forward_padded(model, batches[0]), atol=TOL, rtol=0)


class _Leaky(nn.Module):
    """A frozen conv fed with a detached trainable activation: looks frozen, depends on the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.trained = nn.Conv2d(3, 3, 1)
        self.frozen = nn.Conv2d(3, 3, 3, padding=1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trained(x)
        return h + self.frozen(h.detach())


def test_frozen_looking_call_that_reads_trainable_weights_turns_the_cache_off(caplog) -> None:
    torch.manual_seed(0)
    model = _Leaky().eval()
    batches = [torch.rand(1, 3, 8, 8)]
    cache = PrefixCache(model, batches, forward=lambda m, x: m(x))
    with caplog.at_level(logging.WARNING, logger="dehazekit.bilevel.prefix"):
        out = cache(0)
    assert not cache.enabled and "differs from the full forward" in cache.reason
    assert "prefix cache off" in caplog.text
    with torch.no_grad():
        model.trained.weight.add_(0.5)
    assert torch.allclose(cache(0), model(batches[0]), atol=TOL)
    assert out.requires_grad


class _Shared(nn.Module):
    """One frozen conv called three times: twice in the frozen prefix, once on a trainable activation."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Conv2d(3, 3, 3, padding=1)
        self.shared.requires_grad_(False)
        self.trained = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.shared(x)
        b = self.shared(a * 2)
        h = self.trained(a + b)
        return h + self.shared(h)


def test_a_module_called_several_times_replays_each_call_in_order() -> None:
    torch.manual_seed(0)
    model = _Shared().eval()
    batches = [torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)]
    cache = PrefixCache(model, batches, forward=lambda m, x: m(x))
    for _ in range(2):
        for i, batch in enumerate(batches):
            cached = cache(i)
            grads = torch.autograd.grad(cached.square().mean(), [model.trained.weight])
            expected = torch.autograd.grad(model(batch).square().mean(), [model.trained.weight])
            assert torch.allclose(cached, model(batch), atol=TOL, rtol=0)
            assert torch.allclose(grads[0], expected[0], atol=TOL, rtol=0)
    assert cache.enabled and cache.summary()["cached_calls"] == 2 and cache.stats["replayed"] >= 2


def test_train_mode_norms_fall_back_to_the_full_network() -> None:
    model, _ = _stage2_model("tiny-gunet", "middle")
    model.train()  # BatchNorm on batch statistics: a crop's features depend on its batch
    batches = [torch.rand(2, 3, 32, 32)]
    cache = PrefixCache(model, batches)
    assert not cache.enabled and "train mode" in cache.reason and "<root>, inconv" in cache.reason
    expected = forward_padded(model, batches[0])
    assert torch.allclose(cache(0), expected, atol=TOL)
    assert cache.stats["full"] == 1


def test_memory_cap_falls_back() -> None:
    model, _ = _stage2_model("tiny-gunet", "last")
    batches = [torch.rand(2, 3, 96, 96) for _ in range(3)]
    roomy = PrefixCache(model, batches)
    roomy(0)
    need = roomy.summary()["bytes"] * len(batches) / 2**20  # one batch recorded, three to come
    assert need > 2
    cache = PrefixCache(model, batches, max_bytes=2**20)
    cache(0)
    assert not cache.enabled and f"would hold {need:.0f} MiB > 1 MiB" in cache.reason


def test_finetuner_on_a_fixed_set_matches_the_uncached_steps() -> None:
    """Several Adam steps with the prefix replayed end at the same LoRA weights as without it."""
    model, _ = _stage2_model("tiny-gunet", "encoder+decoder")
    selected = [b for b in gates_of(model)]
    twin = copy.deepcopy(model)
    batches = [torch.rand(2, 3, 32, 32) for _ in range(2)]
    finals = []
    for net, replay in ((model, True), (twin, False)):
        objective = create_objective("offline")
        attach_network(objective, net)
        tuner = FineTuner(net, objective, selected, FinetuneConfig(lr=1e-2))
        cache = PrefixCache(net, batches)
        if not replay:
            cache._disable("test: reference run")
        torch.manual_seed(3)
        for step in range(4):
            tuner.step_fixed(cache, step % 2)
        finals.append([p.detach().clone() for p in tuner.w.values()])
        assert cache.enabled is replay
    assert max(float((a - b).abs().max()) for a, b in zip(*finals)) <= TOL


def test_switching_to_train_mode_after_caching_stops_the_replay() -> None:
    model, _ = _stage2_model("tiny-gunet", "middle")
    batches = [torch.rand(2, 3, 32, 32)]
    cache = PrefixCache(model, batches)
    cache(0)
    model.train()
    assert torch.allclose(cache(0), forward_padded(model, batches[0]), atol=TOL, rtol=0)
    assert not cache.enabled and "train mode" in cache.reason and not cache.entries
