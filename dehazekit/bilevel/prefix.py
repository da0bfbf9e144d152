"""Replay what the frozen part of a network computes on a fixed set of input batches.

Stage 2 trains LoRA in K blocks. Every module call before the first of them (and every frozen branch that
depends on the input only, such as a U-Net's encoder skip projections) produces the same tensors on the
same crop at every step. ``PrefixCache`` records those tensors the first time a batch is seen and hands
copies back on later forwards of that batch, so the frozen prefix runs once per crop instead of once per
step. Autograd already never runs backward through it (nothing there requires grad); the forward is what
is saved.

Exactness rules; where one fails the cache turns itself off, logs why, and the full network runs:
  * a cached call is a module call with no trainable parameter inside, no input that requires grad and
    no output that requires grad, observed with grad enabled (so any dependence on trainable weights
    shows up as requires_grad);
  * every module is in eval mode (batch-statistics norms would make a crop's features depend on its batch);
  * on the first batch, with the trainable weights perturbed, the replayed output must equal the full one
    (catches frozen-looking calls that read trainable state some other way, e.g. through ``detach``);
  * a batch is replayed only while it is the very tensor recorded, unmodified (version counter): crops
    augmented after caching are never served from it;
  * frozen weights or buffers changed in place after recording (version counters), or a change in which
    parameters are trainable or in train/eval mode, drop every recorded batch (re-recorded on next use);
  * the replayed forward must make exactly the recorded module calls (else off, this step recomputed).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 2**30  # the cache of all batches may hold at most this much (estimated on batch 0)
VERIFY_ATOL = 1e-5  # cached vs full output on the check batch, relative to the output's magnitude
Forward = Callable[[nn.Module, Tensor], Tensor]


def _leaves(obj: Any) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _leaves(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _leaves(o)]
    return []


def _clone(obj: Any) -> Any:
    # Copies both ways: a caller may modify a returned tensor in place (x += skip), which must not reach
    # the stored one, and the stored one must not be the tensor the recording forward keeps using.
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    return obj


@dataclass
class _Call:
    name: str
    parent: int | None
    frozen: bool = False
    output: Any = None


@dataclass
class _Entry:
    """One batch's recorded frozen calls: {(module name, index among its visible calls): output}."""

    version: int
    outputs: dict[tuple[str, int], Any] = field(default_factory=dict)
    expected: Counter = field(default_factory=Counter)  # visible calls per wrapped module
    nbytes: int = 0


class PrefixCache:
    """``cache(i)`` = the network's output on ``batches[i]`` (with grad), its frozen calls replayed.

    ``forward(model, x)`` is how the network is run (default: ``forward_padded``). ``enabled`` and
    ``reason`` say whether replay is on and, if not, why.
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Sequence[Tensor],
        forward: Forward | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if forward is None:
            from dehazekit.backbones import forward_padded

            forward = forward_padded
        self.model, self.batches, self.run = model, list(batches), forward
        self.max_bytes = int(max_bytes)
        self.entries: dict[int, _Entry] = {}
        self.enabled, self.reason = True, None
        self.verified = False
        self.stats = {"replayed": 0, "recorded": 0, "full": 0, "invalidated": 0}
        self._state = self._frozen_state()
        training = [n or "<root>" for n, m in model.named_modules() if m.training]
        if training:
            self._disable(f"modules in train mode (batch-statistics norms): {', '.join(training[:3])}")

    # --- public ----------------------------------------------------------------------------------
    def __call__(self, index: int) -> Tensor:
        batch = self.batches[index]
        if not self.enabled or not torch.is_grad_enabled():
            self.stats["full"] += 1
            return self.run(self.model, batch)
        self._check_state()
        if not self.enabled:  # switched to train mode since the last call
            self.stats["full"] += 1
            return self.run(self.model, batch)
        entry = self.entries.get(index)
        if entry is not None and entry.version != batch._version:
            log.warning("prefix cache: batch %d was modified in place after caching; re-recording", index)
            entry = None
        if entry is None:
            return self._record(index)
        return self._replay(index, entry)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def summary(self) -> dict[str, Any]:
        calls = len(next(iter(self.entries.values())).outputs) if self.entries else 0
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "batches": len(self.batches),
            "cached_calls": calls,
            "bytes": self.nbytes,
            **self.stats,
        }

    # --- recording -------------------------------------------------------------------------------
    def _record(self, index: int) -> Tensor:
        batch = self.batches[index]
        calls: list[_Call] = []
        stack: list[int] = []
        trainable = self._trainable_modules()

        def wrap(name: str, module: nn.Module, original: Callable) -> Callable:
            def recording(*args: Any, **kwargs: Any) -> Any:
                calls.append(_Call(name, stack[-1] if stack else None))
                me = len(calls) - 1
                stack.append(me)
                try:
                    out = original(*args, **kwargs)
                finally:
                    stack.pop()
                tensors = _leaves(out)
                inputs = _leaves(args) + _leaves(kwargs)
                if (
                    name not in trainable
                    and tensors
                    and not any(t.requires_grad for t in tensors + inputs)
                    and _has_state(module)
                ):
                    calls[me].frozen, calls[me].output = True, _clone(out)
                return out

            return recording

        with _patched(self.model, wrap, names=None):
            out = self.run(self.model, batch)
        entry = _entry_from(calls, batch._version)
        self.entries[index] = entry
        self.stats["recorded"] += 1
        if not self.verified:
            # the check moves the trainable weights in place, which invalidates ``out``'s graph: the
            # first batch is run once more (replayed when the check passes)
            self._verify(index)
            return self(index)
        if not entry.outputs:
            self._disable("no frozen module call before the trainable layers")
        return out

    def _verify(self, index: int) -> None:
        """Off unless replay == full on this batch with the trainable weights moved (then put back)."""
        self.verified = True
        entry = self.entries[index]
        if not entry.outputs:
            self._disable("no frozen module call before the trainable layers")
            return
        if entry.nbytes * len(self.batches) > self.max_bytes:
            need = entry.nbytes * len(self.batches) / 2**20
            self._disable(f"the cache would hold {need:.0f} MiB > {self.max_bytes / 2**20:.0f} MiB")
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        saved = [p.detach().clone() for p in params]
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            try:
                for p in params:
                    p.add_(1e-2 * torch.randn(p.shape, generator=gen).to(p))
                full = self.run(self.model, self.batches[index])
                replayed = self._replay_outputs(index, entry)
            finally:
                for p, s in zip(params, saved):
                    p.copy_(s)
        if replayed is None:
            self._disable("the replayed forward made other module calls than the recorded one")
            return
        diff = float((replayed - full).abs().max())
        scale = max(1.0, float(full.abs().max()))
        if not diff <= VERIFY_ATOL * scale:
            self._disable(f"replayed output differs from the full forward by {diff:.3g}")
            return
        log.info(
            "prefix cache on: %d frozen module calls per batch, %.1f MiB per batch, %d batches",
            len(entry.outputs),
            entry.nbytes / 2**20,
            len(self.batches),
        )

    # --- replay ----------------------------------------------------------------------------------
    def _replay(self, index: int, entry: _Entry) -> Tensor:
        out = self._replay_outputs(index, entry)
        if out is None:  # control flow no longer matches the recording: recompute, stop replaying
            self._disable("the replayed forward made other module calls than the recorded one")
            self.stats["full"] += 1
            return self.run(self.model, self.batches[index])
        self.stats["replayed"] += 1
        return out

    def _replay_outputs(self, index: int, entry: _Entry) -> Tensor | None:
        seen: Counter = Counter()

        def wrap(name: str, module: nn.Module, original: Callable) -> Callable:
            def replaying(*args: Any, **kwargs: Any) -> Any:
                k = seen[name]
                seen[name] += 1
                cached = entry.outputs.get((name, k))
                return original(*args, **kwargs) if cached is None else _clone(cached)

            return replaying

        with _patched(self.model, wrap, names=set(entry.expected)):
            out = self.run(self.model, self.batches[index])
        return out if seen == entry.expected else None

    # --- validity --------------------------------------------------------------------------------
    def _frozen_state(self) -> tuple:
        # trainable weights change every step by design; only frozen ones must stay as recorded
        tensors = list(self.model.named_parameters()) + list(self.model.named_buffers())
        return (
            tuple(
                (n, True) if t.requires_grad else (n, t._version, t.data_ptr(), t.dtype) for n, t in tensors
            ),
            tuple(m.training for m in self.model.modules()),
        )

    def _check_state(self) -> None:
        state = self._frozen_state()
        if state == self._state:
            return
        self._state = state
        if self.entries:
            log.info("prefix cache: frozen weights, trainable set or modes changed; re-recording")
            self.entries.clear()
            self.stats["invalidated"] += 1
        if any(state[1]):
            self._disable("a module was switched to train mode")

    def _trainable_modules(self) -> set[str]:
        """Names of modules with a trainable parameter anywhere inside (and all their ancestors)."""
        names = set()
        for pname, p in self.model.named_parameters():
            if p.requires_grad:
                parts = pname.split(".")[:-1]
                names.update(".".join(parts[:i]) for i in range(len(parts) + 1))
        return names

    def _disable(self, reason: str) -> None:
        if self.enabled:
            log.warning("prefix cache off, running the full network every step: %s", reason)
        self.enabled, self.reason = False, reason
        self.entries.clear()


def _has_state(module: nn.Module) -> bool:
    # Parameter-free calls (activations, reshapes) cost about what a copy of their output costs.
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _entry_from(calls: list[_Call], version: int) -> _Entry:
    """Keep the outermost frozen calls; number each module's calls as a replay will see them."""
    hidden: set[int] = set()  # calls inside a kept frozen call: they do not run on replay
    kept: set[int] = set()
    for i, call in enumerate(calls):
        if call.parent is not None and (call.parent in hidden or call.parent in kept):
            hidden.add(i)
        elif call.frozen:
            kept.add(i)
    entry = _Entry(version)
    visible: Counter = Counter()
    index_of: dict[int, int] = {}
    for i, call in enumerate(calls):
        if i not in hidden:
            index_of[i] = visible[call.name]
            visible[call.name] += 1
    names = {calls[i].name for i in kept}
    for i in kept:
        entry.outputs[(calls[i].name, index_of[i])] = calls[i].output
        entry.nbytes += sum(t.numel() * t.element_size() for t in _leaves(calls[i].output))
    entry.expected = Counter({n: visible[n] for n in names})
    return entry


class _patched:
    """Context: every named submodule (or those in ``names``) runs ``wrap(name, module, forward)``."""

    def __init__(self, model: nn.Module, wrap: Callable, names: set[str] | None) -> None:
        self.model, self.wrap, self.names = model, wrap, names
        self.saved: list[tuple[nn.Module, Any]] = []

    def __enter__(self) -> _patched:
        for name, module in self.model.named_modules():
            if not name or (self.names is not None and name not in self.names):
                continue
            self.saved.append((module, module.__dict__.get("forward")))
            module.forward = self.wrap(name, module, module.forward)
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, previous in reversed(self.saved):
            if previous is None:
                del module.__dict__["forward"]
            else:
                module.forward = previous
        self.saved.clear()
