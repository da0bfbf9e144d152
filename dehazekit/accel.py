"""Where and in which precision training runs: device, autocast, channels_last, half-precision frozen nets.

One ``Accelerator`` serves adapt (and any loop that trains): it moves modules and batches to the device,
makes every forward of an attached module run under ``torch.autocast`` (the pattern HF accelerate uses: the
instance's ``forward`` is wrapped, so parameter names, state_dicts and LoRA ownership are untouched), keeps
frozen networks such as the CLIP encoder in half precision, and undoes all of it before weights are merged.

Precision choices: ``auto`` = bf16 autocast on a CUDA device that supports it, else fp32. ``fp16`` is refused
for training: fp16 gradients need loss scaling (a GradScaler) and the bilevel loops take their optimiser
steps inside the search, so bf16 (Ampere and newer, Jetson Orin included) is the mixed precision used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dehazekit.runtimes.errors import BackendError, ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU; ``cuda`` without one is an error naming the fix."""
    kind = device.split(":")[0]
    if kind not in DEVICES:
        raise ConfigError.build("unknown --device", got=device, expected=list(DEVICES))
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendError.build(
            "--device cuda asked for but torch sees no GPU",
            fix="use --device cpu, or install a CUDA build of torch",
        )
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device, training: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32."""
    if precision not in PRECISIONS:
        raise ConfigError.build("unknown --precision", got=precision, expected=list(PRECISIONS))
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if precision == "fp16" and training:
        raise ConfigError.build(
            "--precision fp16 is not available for training",
            got="fp16",
            expected="auto, bf16 or fp32",
            fix="use --precision bf16 (Ampere or newer GPUs) or fp32",
        )
    return _HALF.get(precision)


class _DeviceBatches:
    """A batch iterator moved to the device; checkpoints still see the wrapped sampler's state."""

    def __init__(self, sampler: Any, accel: Accelerator) -> None:
        self.sampler, self.accel = sampler, accel

    def __iter__(self) -> Iterator[Tensor]:
        return self

    def __next__(self) -> Tensor:
        return self.accel.to_device(next(self.sampler))

    def state_dict(self) -> Any:
        return self.sampler.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.sampler.load_state_dict(state)


@dataclass(frozen=True)
class Accelerator:
    """Device + autocast dtype (None = fp32) + memory format for one training run."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto", training: bool = True) -> Accelerator:
        where = resolve_device(device)
        # channels_last pays off where cuDNN/tensor cores pick NHWC kernels; on CPU it only adds copies.
        return cls(where, resolve_precision(precision, where, training), channels_last=where.type == "cuda")

    def describe(self) -> str:
        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32")
        layout = ", channels_last" if self.channels_last else ""
        mode = f"{dtype} autocast" if self.autocast_dtype else "fp32"
        return f"{self.device} {mode}{layout}"

    def to_device(self, batch: Tensor) -> Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def batches(self, sampler: Any) -> _DeviceBatches:
        return _DeviceBatches(sampler, self)

    def attach(self, module: nn.Module, frozen: bool = False) -> nn.Module:
        """Move ``module`` to the device and run its forward under autocast; outputs come back fp32.

        ``frozen`` modules (no trainable parameters, e.g. CLIP) are stored in the half dtype too, halving
        their memory and bandwidth; trainable ones keep fp32 master weights.
        """
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return module
        if frozen:
            module.to(self.autocast_dtype)
        if "forward" not in module.__dict__:
            module.forward = _autocast_forward(module.forward, self.device.type, self.autocast_dtype)
        return module

    def detach(self, module: nn.Module) -> nn.Module:
        """Undo ``attach``: plain forward, fp32 weights on the CPU, ready to merge and save."""
        module.__dict__.pop("forward", None)
        return module.to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format)


def _autocast_forward(forward: Any, device_type: str, dtype: torch.dtype) -> Any:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        return _to_fp32(out)

    return run


def _to_fp32(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (list, tuple)):
        return type(out)(_to_fp32(o) for o in out)
    return out
