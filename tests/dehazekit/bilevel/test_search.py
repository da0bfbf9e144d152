"""Bilevel search and fine-tune on a real (tiny) backbone: parameter split, updates, resume."""

from __future__ import annotations

import copy

import pytest
import torch

from dehazekit.backbones import candidate_blocks, create_backbone, list_backbones
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, select_top_k
from dehazekit.lora import gate_parameters, gates_of, inject_lora, lora_parameters, merge_lora
from dehazekit.runtimes.errors import ConfigError, InputError

BACKBONE = "tiny-gunet" if "tiny-gunet" in list_backbones() else None
pytestmark = pytest.mark.skipif(BACKBONE is None, reason="tiny-gunet not registered")


def objective(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # Simple differentiable stand-in: pull the output toward a darker, contrast-stretched input.
    return (out - (hazy - 0.2) * 1.3).square().mean()


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_backbone(BACKBONE)
    inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    return model


def _batches(n: int, seed: int = 0, size: int = 16):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(2, 3, size, size, generator=gen), torch.rand(2, 3, size, size, generator=gen))
        for _ in range(n)
    ]


def test_alpha_never_in_w_optimizer() -> None:
    model = _model()
    search = BilevelSearch(model, objective, SearchConfig(lr_w=1e-3))
    names = {id(p): n for n, p in model.named_parameters()}
    w_opt = [names[id(p)] for g in search.opt_w.param_groups for p in g["params"]]
    a_opt = [names[id(p)] for g in search.opt_alpha.param_groups for p in g["params"]]
    assert sorted(w_opt) == sorted(lora_parameters(model)) and not any("lora_gate" in n for n in w_opt)
    assert sorted(a_opt) == sorted(gate_parameters(model))
    alpha_before = {n: p.clone() for n, p in gate_parameters(model).items()}
    _, batch_w = _batches(1)[0]
    search.lower_step(batch_w)
    for n, p in gate_parameters(model).items():
        assert torch.equal(p, alpha_before[n]) and p.grad is None


@pytest.mark.parametrize("method", ["rank1", "first-order", "unrolled", "reference", "cg"])
def test_search_then_finetune_changes_only_lora_and_gates(method: str) -> None:
    model = _model()
    base = {k.replace(".base_layer", ""): v.clone() for k, v in model.state_dict().items() if "lora" not in k}
    seen = []
    search = BilevelSearch(
        model, objective, SearchConfig(hypergrad=method, lr_w=1e-3, lr_alpha=0.05), callback=seen.append
    )
    history = search.run(iter(_batches(3)), steps=3)
    assert len(history) == len(seen) == 3 and all(
        torch.isfinite(torch.tensor(h["lower_loss"])) for h in history
    )
    gates = search.gate_values()
    assert len(set(gates.values())) > 1, "the hypergradient must move the gates apart"
    selected = select_top_k(gates, k=2)
    tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=1e-3))
    assert sorted(gates_of(model)) == sorted(selected)
    frozen_gates = {b: float(g.value()) for b, g in gates_of(model).items()}
    searched_w = {k: v.clone() for k, v in lora_parameters(model).items()}
    losses = [tuner.step(b[1])["loss"] for b in _batches(3, seed=1)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert {b: float(g.value()) for b, g in gates_of(model).items()} == frozen_gates
    assert all(
        n.split(".lora_")[0].startswith(tuple(s + "." for s in selected)) for n in lora_parameters(model)
    )
    assert any(not torch.equal(p, searched_w[n]) for n, p in lora_parameters(model).items())
    for k, v in model.state_dict().items():  # base weights never change
        if "lora" not in k:
            assert torch.equal(v, base[k.replace(".base_layer", "")])
    x = _batches(1, seed=5)[0][0]
    with torch.no_grad():
        unmerged = model(x)
        merged = merge_lora(model)(x)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)


def test_resume_reproduces_the_next_step() -> None:
    batches = _batches(3)
    model_a = _model()
    model_b = copy.deepcopy(model_a)
    config = SearchConfig(lr_w=1e-3, lr_alpha=0.01)
    search_a = BilevelSearch(model_a, objective, config)
    search_a.run(iter(batches[:2]), steps=2)
    state = copy.deepcopy(search_a.state_dict())
    search_a.step(*batches[2])
    search_b = BilevelSearch(model_b, objective, config)
    search_b.load_state_dict(state)
    assert search_b.step_count == 2
    search_b.step(*batches[2])
    for (n, p), (_, q) in zip(sorted(model_a.named_parameters()), sorted(model_b.named_parameters())):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=0, msg=n)


def test_search_refuses_models_without_gates_and_bad_batches() -> None:
    plain = create_backbone(BACKBONE)
    with pytest.raises(ConfigError, match="gated LoRA"):
        BilevelSearch(plain, objective)
    search = BilevelSearch(_model(), objective)
    with pytest.raises(InputError):
        search.lower_step(torch.rand(3, 16, 16))
    with pytest.raises(ConfigError):
        SearchConfig(hypergrad="second-order")
    with pytest.raises(ConfigError):
        SearchConfig(lr_w=0)


@pytest.mark.parametrize(
    ("method", "reuse", "calls"),
    [
        ("rank1", True, 2),
        ("rank1", False, 3),
        ("first-order", True, 2),
        ("unrolled", True, 4),
        ("cg", True, 2),
        ("cg", False, 3),
    ],
)
def test_objective_evaluations_per_step(method: str, reuse: bool, calls: int) -> None:
    count = []

    def counting(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        count.append(1)
        return objective(hazy, out)

    search = BilevelSearch(_model(), counting, SearchConfig(hypergrad=method, reuse_lower_grad=reuse))
    search.step(*_batches(1)[0])
    assert len(count) == calls


def test_reused_lower_gradient_matches_recomputed_closely() -> None:
    batches = _batches(4)
    runs = {}
    for reuse in (True, False):
        model = _model()
        BilevelSearch(model, objective, SearchConfig(lr_w=1e-3, reuse_lower_grad=reuse)).run(iter(batches), 4)
        runs[reuse] = {n: p.detach() for n, p in lora_parameters(model).items()}
    diffs = [float((runs[True][n] - runs[False][n]).abs().max()) for n in runs[True]]
    moved = [float(p.abs().max()) for n, p in runs[True].items() if n.endswith("lora_B")]
    assert max(moved) > 1e-3 and max(diffs) < 0.05 * max(moved)


def test_non_finite_objective_is_a_clear_error() -> None:
    from dehazekit.runtimes.errors import NumericalError

    search = BilevelSearch(_model(), lambda hazy, out: (out * float("nan")).mean())
    with pytest.raises(NumericalError, match="not finite at step 0"):
        search.step(*_batches(1)[0])
    tuner = FineTuner(_model(), lambda hazy, out: out.mean() / 0.0 * 0.0, ["layers.0.blocks.0"])
    with pytest.raises(NumericalError):
        tuner.step(_batches(1)[0][1])
