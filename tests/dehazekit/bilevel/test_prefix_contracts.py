"""PrefixCache contracts the prefix tests did not pin (found by benchmarks/mutants.py): the memory budget is
an inclusive cap, and a forward whose module calls changed after recording turns replay off for good."""

from __future__ import annotations

import torch
from torch import nn

from dehazekit.bilevel import PrefixCache

TOL = 1e-6


class _Branchy(nn.Module):
    """A frozen conv before a trainable one; ``extra`` adds one more frozen call (control flow changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Conv2d(3, 3, 3, padding=1)
        self.frozen.requires_grad_(False)
        self.trained = nn.Conv2d(3, 3, 1)
        self.extra = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.frozen(x)
        if self.extra:
            a = a + self.frozen(a)
        return self.trained(a)


def _cache(max_bytes: int | None = None) -> tuple[_Branchy, list[torch.Tensor], PrefixCache]:
    torch.manual_seed(0)
    model = _Branchy().eval()
    batches = [torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)]
    options = {} if max_bytes is None else {"max_bytes": max_bytes}
    return model, batches, PrefixCache(model, batches, forward=lambda m, x: m(x), **options)


def test_a_budget_of_exactly_what_the_cache_needs_is_enough() -> None:
    _, batches, roomy = _cache()
    roomy(0)
    need = roomy.nbytes * len(batches)  # one batch recorded: the estimate for all of them
    _, _, cache = _cache(max_bytes=need)
    cache(0)
    assert cache.enabled, cache.reason


def test_changed_control_flow_after_recording_turns_replay_off_and_stays_correct() -> None:
    model, batches, cache = _cache()
    cache(0)
    assert cache.enabled
    model.extra = True  # the forward now makes a module call the recording does not have
    out = cache(0)
    assert torch.allclose(out, model(batches[0]), atol=TOL, rtol=0)
    assert not cache.enabled and "other module calls" in cache.reason
