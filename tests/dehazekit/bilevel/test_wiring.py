"""What actually reaches the optimisers: each test recomputes the expected quantity on its own, from F on
batch_alpha and f on batch_w, and compares it with what upper_step/lower_step/FineTuner hand to torch."""

from __future__ import annotations

import copy

import pytest
import torch

from dehazekit.backbones import candidate_blocks, create_backbone, forward_padded, list_backbones
from dehazekit.bilevel import BilevelSearch, FinetuneConfig, FineTuner, SearchConfig, select_top_k
from dehazekit.lora import gate_parameters, gates_of, inject_lora, lora_parameters
from tests.dehazekit.lora.toy_nets import randomize_lora

BACKBONE = "tiny-gunet" if "tiny-gunet" in list_backbones() else None
pytestmark = pytest.mark.skipif(BACKBONE is None, reason="tiny-gunet not registered")
WD = 1e-5


def objective(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return (out - (hazy - 0.2) * 1.3).square().mean()


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_backbone(BACKBONE)
    inject_lora(model, candidate_blocks(model), rank=2, lora_alpha=4.0)
    randomize_lora(model, scale=0.3, seed=seed)  # B != 0: every term of the hypergradient is alive
    return model.eval()


def _batch(seed: int, size: int = 16) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def hg_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _spy_grads(optimizer: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter]) -> list[dict]:
    """Record the .grad of ``params`` each time ``optimizer.step`` runs (the optimiser still steps)."""
    seen: list[dict] = []
    real_step = optimizer.step

    def step(*args, **kwargs):
        seen.append({n: p.grad.detach().clone() for n, p in params.items()})
        return real_step(*args, **kwargs)

    optimizer.step = step  # type: ignore[method-assign]
    return seen


def _sum_sq_b(model: torch.nn.Module) -> torch.Tensor:
    return sum(p.square().sum() for n, p in lora_parameters(model).items() if n.endswith(".lora_B"))


def _expected_hypergradient(
    model, method: str, batch_alpha, batch_w, config: SearchConfig, wd: float = WD
) -> torch.Tensor:
    """The hypergradient written out from scratch for this model (no dehazekit.bilevel code)."""
    alpha, w = list(gate_parameters(model).values()), list(lora_parameters(model).values())
    for p in alpha + w:
        p.requires_grad_(True)
    F = objective(batch_alpha, forward_padded(model, batch_alpha))
    dF_da, dF_dw = _flat(torch.autograd.grad(F, alpha, retain_graph=True)), torch.autograd.grad(F, w)
    f = objective(batch_w, forward_padded(model, batch_w)) + 0.5 * wd * _sum_sq_b(model)
    df_da = torch.autograd.grad(f, alpha, retain_graph=True, create_graph=True)
    df_dw = torch.autograd.grad(f, w, create_graph=True)
    if method == "first-order":
        return dF_da
    if method == "cg":  # one CG iteration from 0: x = (r.r / r.(H + damping) r) r with r = dF/dw
        r = [g.detach() for g in dF_dw]
        hr = torch.autograd.grad(df_dw, w, r, retain_graph=True)
        curvature = _flat(r) @ (_flat(hr) + config.cg_damping * _flat(r))
        x = [g * (_flat(r) @ _flat(r) / curvature) for g in r]
        return dF_da - _flat(torch.autograd.grad(df_dw, alpha, x))
    coef = (_flat(dF_dw) @ _flat(df_dw).detach()) / (_flat(df_dw).detach().square().sum() + config.eps)
    df_da = _flat(df_da).detach()
    return dF_da - coef * df_da if method == "rank1" else dF_da + config.lr_w * coef * df_da


@pytest.mark.parametrize("method", ["rank1", "reference", "first-order", "cg"])
def test_upper_step_applies_the_independent_hypergradient(method: str) -> None:
    model = _model()
    wd = 0.3 if method == "cg" else WD  # cg: decay large enough in H that dropping it from f shows
    config = SearchConfig(hypergrad=method, weight_decay_w=wd, cg_iters=1, cg_warm_start=False, lr_w=0.5)
    batch_alpha, batch_w = _batch(1), _batch(2)
    expected = _expected_hypergradient(copy.deepcopy(model), method, batch_alpha, batch_w, config, wd)
    first_order = _expected_hypergradient(copy.deepcopy(model), "first-order", batch_alpha, batch_w, config)
    if method == "cg":
        no_decay = _expected_hypergradient(copy.deepcopy(model), method, batch_alpha, batch_w, config, 0.0)
        assert (expected - no_decay).norm() > 0.05 * expected.norm()
    search = BilevelSearch(model, objective, config)
    seen = _spy_grads(search.opt_alpha, search.alpha)
    search.upper_step(batch_alpha, batch_w)
    got = _flat(list(seen[0].values()))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    if method != "first-order":  # the implicit term is large enough here to tell a dropped one apart
        assert (expected - first_order).norm() > 0.05 * expected.norm()


def test_lower_step_clips_and_uses_f_with_weight_decay() -> None:
    model = _model()
    wd = 3e-3  # decay and objective gradients of similar size: dropping either changes the direction
    config = SearchConfig(weight_decay_w=wd, grad_clip=1e-5, reuse_lower_grad=False)
    search = BilevelSearch(model, objective, config)
    seen = _spy_grads(search.opt_w, search.w)
    batch_w = _batch(3)
    ref = copy.deepcopy(model)
    w_ref = list(lora_parameters(ref).values())
    loss = objective(batch_w, forward_padded(ref, batch_w))
    raw = _flat(torch.autograd.grad(loss + 0.5 * wd * _sum_sq_b(ref), w_ref, retain_graph=True))
    no_decay = _flat(torch.autograd.grad(loss, w_ref))
    assert raw.norm() > 10 * config.grad_clip and hg_cos(raw, no_decay) < 0.95
    stats = search.lower_step(batch_w)
    got = _flat(list(seen[0].values()))
    assert stats["w_grad_norm"] == pytest.approx(float(raw.norm()), rel=1e-4)
    torch.testing.assert_close(got, raw * (config.grad_clip / raw.norm()), atol=1e-7, rtol=1e-3)


def test_optimisers_get_the_configured_rates() -> None:
    config = SearchConfig(lr_alpha=0.0123, lr_w=0.000456, betas_alpha=(0.4, 0.9), weight_decay_alpha=0.007)
    search = BilevelSearch(_model(), objective, config)
    (ga,), (gw,) = search.opt_alpha.param_groups, search.opt_w.param_groups
    assert (ga["lr"], ga["betas"], ga["weight_decay"]) == (0.0123, (0.4, 0.9), 0.007)
    assert gw["lr"] == 0.000456 and isinstance(search.opt_w, torch.optim.Adam)
    tuner = FineTuner(_model(), objective, ["layers.0.blocks.0"], FinetuneConfig(lr=0.000789))
    assert tuner.opt.param_groups[0]["lr"] == 0.000789


def test_unrolled_virtual_step_is_adams_effective_step() -> None:
    search = BilevelSearch(_model(), objective, SearchConfig(hypergrad="unrolled", lr_w=1e-3))
    search.run(iter([(_batch(i), _batch(10 + i)) for i in range(2)]), 2)
    stats = search.upper_step(_batch(5), _batch(6))
    # Adam moves every coordinate by ~lr whatever the gradient's size, so xi is far from lr_w itself.
    assert stats["unrolled_xi"] > 0 and abs(stats["unrolled_xi"] - 1e-3) > 1e-3


def test_finetune_starts_from_the_searched_weights_and_gates() -> None:
    model = _model()
    search = BilevelSearch(model, objective, SearchConfig(lr_w=1e-2, lr_alpha=0.05))
    search.run(iter([(_batch(i), _batch(10 + i)) for i in range(3)]), 3)
    gates = search.gate_values()
    selected = select_top_k(gates, k=2)
    kept = {
        n: p.detach().clone()
        for n, p in lora_parameters(model).items()
        if n.startswith(tuple(b + "." for b in selected))
    }
    tuner = FineTuner(model, objective, selected, FinetuneConfig(lr=1e-3, grad_clip=1e-3))
    assert sorted(lora_parameters(model)) == sorted(kept)
    for name, p in lora_parameters(model).items():
        assert torch.equal(p, kept[name]), name
    assert {b: float(g.value()) for b, g in gates_of(model).items()} == {b: gates[b] for b in selected}
    seen = _spy_grads(tuner.opt, tuner.w)
    tuner.step(_batch(20) * 50)  # a large loss: its gradient must arrive clipped
    assert float(_flat(list(seen[0].values())).norm()) <= 1e-3 * (1 + 1e-4)
    assert {b: float(g.value()) for b, g in gates_of(model).items()} == {b: gates[b] for b in selected}


def test_search_stops_once_the_top_k_set_is_stable() -> None:
    batches = [(_batch(i), _batch(10 + i)) for i in range(30)]
    config = SearchConfig(lr_w=1e-3, lr_alpha=0.05, stop_top_k=2, stop_patience=3)
    search = BilevelSearch(_model(), objective, config)
    tops = []
    for batch_alpha, batch_w in batches:
        search.step(batch_alpha, batch_w)
        tops.append(set(select_top_k(search.gate_values(), k=2)))
        if search.converged:
            break
    assert len(tops) < 30, "the top-2 set never held still for 3 steps"
    assert tops[-4] == tops[-3] == tops[-2] == tops[-1]  # unchanged for the last 3 steps ...
    assert len(tops) == 4 or tops[-5] != tops[-4]  # ... and not for 4 (it stopped at the first chance)
    never = BilevelSearch(_model(), objective, SearchConfig(lr_w=1e-3, lr_alpha=0.05, stop_patience=0))
    assert len(never.run(iter(batches[:6]), 6)) == 6 and not never.converged
    again = BilevelSearch(_model(), objective, config)
    assert len(again.run(iter(batches), 30)) == len(tops)


def test_cg_warm_starts_from_the_previous_solution() -> None:
    # With one product and a warm start, the step spends it on the residual: g = dF/da - C v_prev exactly.
    model = _model()
    config = SearchConfig(hypergrad="cg", weight_decay_w=WD, cg_iters=1, cg_warm_start=True)
    search = BilevelSearch(model, objective, config)
    search.upper_step(_batch(1), _batch(2))
    v_prev = [v.clone() for v in search._cg_v]
    assert max(float(v.abs().max()) for v in v_prev) > 0
    batch_alpha, batch_w = _batch(3), _batch(4)
    ref = copy.deepcopy(model)
    alpha, w = list(gate_parameters(ref).values()), list(lora_parameters(ref).values())
    dF_da = _flat(torch.autograd.grad(objective(batch_alpha, forward_padded(ref, batch_alpha)), alpha))
    f = objective(batch_w, forward_padded(ref, batch_w)) + 0.5 * WD * _sum_sq_b(ref)
    df_dw = torch.autograd.grad(f, w, create_graph=True)
    expected = dF_da - _flat(torch.autograd.grad(df_dw, alpha, v_prev))
    seen = _spy_grads(search.opt_alpha, search.alpha)
    search.upper_step(batch_alpha, batch_w)
    torch.testing.assert_close(_flat(list(seen[0].values())), expected, atol=1e-7, rtol=1e-4)


def test_patience_one_stops_at_the_first_repeat() -> None:
    search = BilevelSearch(
        _model(), objective, SearchConfig(lr_w=1e-3, lr_alpha=0.05, stop_top_k=2, stop_patience=1)
    )
    tops = []
    for i in range(12):
        search.step(_batch(i), _batch(10 + i))
        tops.append(set(select_top_k(search.gate_values(), k=2)))
        repeated = len(tops) > 1 and tops[-1] == tops[-2]
        assert search.converged == repeated
        if repeated:
            break
    assert search.converged


@pytest.mark.parametrize(
    "bad",
    [
        {"cg_iters": 0},
        {"cg_iters": True},
        {"cg_iters": 1.5},
        {"stop_top_k": 0},
        {"stop_patience": -1},
        {"weight_decay_w": -1e-3},
        {"cg_damping": -1.0},
    ],
)
def test_search_config_rejects(bad: dict) -> None:
    from dehazekit.runtimes.errors import ConfigError

    with pytest.raises(ConfigError, match=next(iter(bad))):
        SearchConfig(**bad)


@pytest.mark.parametrize(
    "bad", [torch.rand(2, 3, 16), torch.randint(0, 255, (2, 3, 16, 16)), [[0.5]], torch.rand(2, 4, 16, 16)]
)
def test_batches_are_checked_before_any_work(bad) -> None:
    from dehazekit.runtimes.errors import InputError

    search = BilevelSearch(_model(), objective, SearchConfig())
    with pytest.raises(InputError, match="batch_w"):
        search.lower_step(bad)
    with pytest.raises(InputError, match="batch_alpha"):
        search.upper_step(bad, _batch(0))
