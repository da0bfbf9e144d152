"""h2c on a fixed crop set: each input crop is embedded by the frozen CLIP once, with the same loss."""

from __future__ import annotations

import torch

from dehazekit.objectives import remember_inputs
from dehazekit.objectives.h2c import H2CObjective


def _encoder_calls(h2c: H2CObjective, fn) -> int:
    calls = []
    handle = h2c.clip.visual.register_forward_pre_hook(lambda mod, args: calls.append(1))
    try:
        fn()
    finally:
        handle.remove()
    return len(calls)


def test_remembered_inputs_are_embedded_once_with_the_same_loss(tiny_h2c: H2CObjective) -> None:
    torch.manual_seed(0)
    batches = [torch.rand(2, 3, 32, 32) for _ in range(2)]
    outs = [torch.rand(2, 3, 32, 32, requires_grad=True) for _ in range(2)]
    plain = [tiny_h2c(b, o) for b, o in zip(batches, outs)]
    plain_grads = [torch.autograd.grad(loss, o)[0] for loss, o in zip(plain, outs)]
    remember_inputs(tiny_h2c, batches)
    for _ in range(2):
        for i, (batch, out) in enumerate(zip(batches, outs)):
            loss = tiny_h2c(batch, out)
            assert torch.allclose(loss, plain[i], atol=1e-6)
            assert torch.allclose(torch.autograd.grad(loss, out)[0], plain_grads[i], atol=1e-6)
    # remembered: one encoder call (the output) per step
    assert _encoder_calls(tiny_h2c, lambda: tiny_h2c(batches[0], outs[0])) == 1
    # an equal but different tensor, or a remembered one modified in place, is embedded again
    assert _encoder_calls(tiny_h2c, lambda: tiny_h2c(batches[0].clone(), outs[0])) == 2
    batches[1].mul_(0.5)
    with torch.no_grad():
        expected = tiny_h2c.image_features(batches[1].clamp(0, 1))
    assert _encoder_calls(tiny_h2c, lambda: tiny_h2c(batches[1], outs[1])) == 2
    assert torch.allclose(tiny_h2c.input_features(batches[1]), expected, atol=1e-6)
    remember_inputs(tiny_h2c, [])  # forget: the module-scoped fixture is shared
