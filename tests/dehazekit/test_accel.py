"""Accelerator: device/precision choice, and autocast that leaves names and weights alone.

The adapt runs under bf16 and CUDA are in tests/dehazekit/adapt/test_precision.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dehazekit.accel import Accelerator, resolve_device, resolve_precision
from dehazekit.runtimes.errors import BackendError, ConfigError

CPU = torch.device("cpu")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def test_auto_is_fp32_on_cpu_and_bf16_must_be_asked_for():
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else CPU)
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_precision("fp16", CPU, training=False) is torch.float16


@pytest.mark.parametrize(
    ("device", "precision", "error"),
    [("tpu", "auto", ConfigError), ("auto", "int8", ConfigError), ("cpu", "fp16", ConfigError)],
)
def test_bad_choices_are_config_errors(device, precision, error):
    with pytest.raises(error):
        Accelerator.resolve(device, precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_names_the_fix():
    with pytest.raises(BackendError, match="--device cpu"):
        resolve_device("cuda")


def test_attach_runs_forward_in_bf16_and_detach_restores_the_module():
    net, reference = small_net(), small_net()
    x = torch.rand(2, 3, 16, 16)
    keys = list(net.state_dict())
    accel = Accelerator(CPU, torch.bfloat16)
    accel.attach(net)
    out = net(x)
    assert out.dtype == torch.float32  # callers never see half tensors
    expected = reference(x)
    assert not torch.equal(out, expected)  # really ran in bf16 ...
    torch.testing.assert_close(out, expected, atol=3e-2, rtol=3e-2)  # ... and close to fp32
    assert list(net.state_dict()) == keys and all(p.dtype == torch.float32 for p in net.parameters())
    accel.detach(net)
    assert "forward" not in net.__dict__
    torch.testing.assert_close(net(x), expected)


def test_frozen_modules_are_stored_in_the_half_dtype():
    frozen = small_net().requires_grad_(False)
    Accelerator(CPU, torch.bfloat16).attach(frozen, frozen=True)
    assert all(p.dtype == torch.bfloat16 for p in frozen.parameters())
    assert frozen(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def test_batches_move_to_the_device_and_keep_sampler_state():
    class Sampler:
        def __init__(self):
            self.state = 0

        def __next__(self):
            self.state += 1
            return torch.zeros(1, 3, 4, 4)

        def state_dict(self):
            return {"drawn": self.state}

        def load_state_dict(self, state):
            self.state = state["drawn"]

    batches = Accelerator(CPU, None, channels_last=True).batches(Sampler())
    batch = next(batches)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert batches.state_dict() == {"drawn": 1}
    batches.load_state_dict({"drawn": 7})
    assert batches.state_dict() == {"drawn": 7}
