"""Put gated LoRA into named blocks of a model, select its parameters by name, merge it back out.

Blocks are module paths matched EXACTLY (``'x1'`` never matches ``'x10'``); a Conv2d/Linear belongs to
the innermost listed block that contains it. Which layers inside a block are skipped comes from the
backbone spec's ``exclude(qualified_name, module)`` (depthwise convs, 1x1 attention generators, ...).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from dehazekit.lora.gates import GATE_ATTR, Gate
from dehazekit.lora.layers import LoRALayer, wrap_layer
from dehazekit.runtimes.errors import ConfigError, DehazeKitError

log = logging.getLogger(__name__)

LORA_PARAM_SUFFIXES = (".lora_A", ".lora_B")
GATE_PARAM_SUFFIX = f".{GATE_ATTR}.alpha"


def _exclude_fn(model: nn.Module):
    # Models not built by create_backbone (toy modules in tests, user code) exclude nothing.
    if getattr(model, "backbone_name", None) is None:
        return lambda name, module: False
    from dehazekit.backbones import spec_of

    return spec_of(model).exclude


def resolve_blocks(model: nn.Module, blocks: Iterable[str]) -> dict[str, nn.Module]:
    """Map each block path to its module by exact name; unknown names raise ConfigError with suggestions."""
    modules = dict(model.named_modules())
    resolved: dict[str, nn.Module] = {}
    for name in blocks:
        if not isinstance(name, str) or name not in modules or name == "":
            pool = _candidate_pool(model, modules)
            close = difflib.get_close_matches(str(name), pool, n=3, cutoff=0.5)
            raise ConfigError.build(
                f"unknown block {name!r}",
                got=name,
                expected=f"a module path of {getattr(model, 'backbone_name', type(model).__name__)}",
                fix=f"did you mean {', '.join(close)}?"
                if close
                else "list them with candidate_blocks(model)",
            )
        resolved[name] = modules[name]
    return resolved


def _candidate_pool(model: nn.Module, modules: dict[str, nn.Module]) -> list[str]:
    try:
        from dehazekit.backbones import candidate_blocks

        return candidate_blocks(model)
    except DehazeKitError:  # not a registered backbone: suggest among all module paths
        return [n for n in modules if n]


def _owner(name: str, blocks: list[str]) -> str | None:
    """Innermost block whose path is a dotted prefix of ``name`` (exact path segments, no substrings)."""
    owners = [b for b in blocks if name.startswith(b + ".")]
    return max(owners, key=len) if owners else None


def inject_lora(
    model: nn.Module, blocks: Iterable[str], rank: int = 8, lora_alpha: float = 16.0, gated: bool = True
) -> dict[str, Gate]:
    """Wrap every eligible Conv2d/Linear inside each block with LoRA; one Gate per block.

    Returns {block: Gate}. Blocks without any eligible layer are skipped with a warning (no gate).
    ``gated=False`` gives gates fixed to 1 (plain LoRA). The model is modified in place.
    """
    blocks = list(dict.fromkeys(blocks))
    resolved = resolve_blocks(model, blocks)
    exclude = _exclude_fn(model)
    targets: dict[str, list[str]] = {b: [] for b in blocks}
    for name, module in model.named_modules():
        # Exact types only: a Conv2d subclass may have its own forward that LoRA's path would bypass.
        if type(module) not in (nn.Conv2d, nn.Linear) or "base_layer" in name.split("."):
            continue
        owner = _owner(name, blocks)
        if owner is not None and not exclude(name, module):
            targets[owner].append(name)
    gates: dict[str, Gate] = {}
    for block, names in targets.items():
        if not names:
            log.warning(
                "block %s has no LoRA-eligible Conv2d/Linear layer; it gets no LoRA and no gate", block
            )
            continue
        if hasattr(resolved[block], GATE_ATTR):
            raise ConfigError.build(f"block {block!r} already has LoRA", fix="inject each block once")
        gate = Gate(ungated=not gated)
        if not gated:
            gate.fix_to_one()
        gate.to(device=_get(model, names[0]).weight.device)
        resolved[block].add_module(GATE_ATTR, gate)
        for name in names:
            layer = wrap_layer(_get(model, name), rank, lora_alpha, gate)
            layer.block = block
            _replace(model, name, layer)
        gates[block] = gate
    return gates


def _get(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALayer]]:
    for name, module in model.named_modules():
        if isinstance(module, LoRALayer):
            yield name, module


def gates_of(model: nn.Module) -> dict[str, Gate]:
    """{block path: Gate} for every gate in the model."""
    suffix = f".{GATE_ATTR}"
    return {
        name[: -len(suffix)]: m
        for name, m in model.named_modules()
        if isinstance(m, Gate) and name.endswith(suffix)
    }


def gate_values(model: nn.Module) -> dict[str, float]:
    """{block: current gate factor}, e.g. sigmoid(alpha)."""
    return {block: float(g.value().detach()) for block, g in gates_of(model).items()}


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """LoRA factors (``*.lora_A``, ``*.lora_B``) selected by parameter NAME; never contains gates."""
    return {n: p for n, p in model.named_parameters() if n.endswith(LORA_PARAM_SUFFIXES)}


def gate_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Gate logits (``*.lora_gate.alpha``) selected by parameter NAME; disjoint from lora_parameters."""
    return {n: p for n, p in model.named_parameters() if n.endswith(GATE_PARAM_SUFFIX)}


def remove_lora(model: nn.Module, keep: Iterable[str] = ()) -> nn.Module:
    """Drop LoRA (unmerged deltas discarded) and gates from every block not in ``keep`` (exact names)."""
    keep = list(dict.fromkeys(keep))
    gates = gates_of(model)
    unknown = [b for b in keep if b not in gates]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(gates), n=3, cutoff=0.5)
        raise ConfigError.build(
            "blocks to keep have no LoRA",
            got=unknown,
            expected=sorted(gates),
            fix=f"did you mean {', '.join(close)}?" if close else None,
        )
    for name, layer in list(lora_layers(model)):
        # Ownership is the block the layer was injected for, not a name prefix: with nested candidate
        # blocks a layer of an unselected inner block also lies under a selected outer block's path.
        if layer.block not in keep:
            layer.unmerge()
            _replace(model, name, layer.base_layer)
    for block in gates:
        if block not in keep:
            delattr(model.get_submodule(block), GATE_ATTR)
    return model


def remove_gates(model: nn.Module, blocks: Iterable[str] | None = None) -> nn.Module:
    """Fold each gate's current value into its block's ``lora_B`` and delete the gate (outputs unchanged).

    ``blocks`` limits it to some blocks (default: all). Their LoRA then runs ungated (factor 1).
    """
    import torch

    gates = gates_of(model)
    chosen = list(gates) if blocks is None else list(blocks)
    unknown = [b for b in chosen if b not in gates]
    if unknown:
        raise ConfigError.build("blocks have no gate", got=unknown, expected=sorted(gates))
    with torch.no_grad():
        for name, layer in lora_layers(model):
            if layer.gate is None or layer.block not in chosen:
                continue
            if layer.merged:
                raise ConfigError.build(
                    f"layer {name} is merged", fix="unmerge_lora(model) before removing gates"
                )
            layer.lora_B.mul_(layer.gate.value().to(layer.lora_B.dtype))
            layer.set_gate(None)
    for block in chosen:
        delattr(model.get_submodule(block), GATE_ATTR)
    return model


def lora_blocks(model: nn.Module) -> list[str]:
    """Blocks holding LoRA layers (gated or not), in module order."""
    return list(dict.fromkeys(layer.block for _, layer in lora_layers(model)))


def merge_lora(model: nn.Module, safe: bool = True, unload: bool = True) -> nn.Module:
    """Fold every LoRA delta (gate included) into its base weight.

    ``unload=True`` (default) puts the plain layers back and deletes the gates, so the result is a
    plain backbone (same state_dict keys as the original). ``unload=False`` merges in place and keeps
    the wrappers so ``unmerge_lora`` can undo it. ``safe`` refuses non-finite merged weights
    (NumericalError naming the layer) before touching any weight.
    """
    layers = list(lora_layers(model))
    if safe:  # check everything first so a refusal leaves the model untouched
        for name, layer in layers:
            if not layer.merged:
                _check_finite(name, layer)
    for name, layer in layers:
        layer.merge(safe_merge=False, name=name)
        if unload:
            layer._saved_weight = None
            _replace(model, name, layer.base_layer)
    if unload:
        for block in gates_of(model):
            delattr(model.get_submodule(block), GATE_ATTR)
    return model


@torch.no_grad()
def scale_lora(model: nn.Module, strength: float) -> nn.Module:
    """Multiply every LoRA delta by ``strength`` (through B, so saved adapters and merges carry it):
    the model moves to base + strength * delta, between the base (0) and the trained adapter (1)."""
    for _, layer in lora_layers(model):
        if layer.merged:
            raise ValueError("scale_lora needs unmerged LoRA layers")
        layer.lora_B.mul_(float(strength))
    return model


def _check_finite(name: str, layer: LoRALayer) -> None:
    import torch

    from dehazekit.runtimes.errors import NumericalError

    with torch.no_grad():
        weight = layer.merged_weight()
        if not torch.isfinite(weight).all():
            bad = int((~torch.isfinite(weight)).sum())
            raise NumericalError.build(
                f"refusing to merge LoRA into layer {name}",
                got=f"{bad} non-finite values in the merged weight",
                expected="finite weights",
                fix="the adapter diverged: lower the learning rate or use an earlier checkpoint",
            )


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo ``merge_lora(model, unload=False)``: restore every base weight exactly."""
    for _, layer in lora_layers(model):
        layer.unmerge()
    return model


def has_lora(model: nn.Module) -> bool:
    return any(True for _ in lora_layers(model)) or bool(gates_of(model))
