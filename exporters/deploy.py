"""Deploy preparation: turn a trained/adapted model into the plain network that gets exported.

Order matters: LoRA is merged first (a LoRA layer may wrap a conv inside a re-parameterisable block such
as DEConv, whose fold must see the merged weights), then the model is re-parameterised, then frozen.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from dehazekit.runtimes.errors import ExportError, NumericalError

log = logging.getLogger(__name__)

# Attribute names that only LoRA wrappers / gates carry (see CONTRIBUTING "LoRA").
_LORA_MARKERS = ("lora_A", "lora_B", "lora_gate")


def lora_leftovers(model: nn.Module) -> list[str]:
    """Qualified names of parameters/buffers/modules that belong to LoRA (empty when fully merged)."""
    found = [name for name, _ in model.named_parameters() if any(m in name.split(".") for m in _LORA_MARKERS)]
    found += [
        name
        for name, mod in model.named_modules()
        if name and type(mod).__name__.startswith("LoRA") and hasattr(mod, "base_layer")
    ]
    return sorted(set(found))


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of parameters/buffers holding NaN or Inf (a merge or a bad checkpoint can produce them)."""
    bad = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def _merge_lora(model: nn.Module) -> nn.Module:
    if not lora_leftovers(model):
        return model
    try:
        from dehazekit.lora import merge_lora
    except ImportError as exc:  # the LoRA module is part of dehazekit; absence means a broken install
        raise ExportError.build(
            "model has LoRA layers but dehazekit.lora cannot be imported",
            got=str(exc),
            fix="reinstall dehazekit",
        ) from exc
    merged = merge_lora(model, safe=True)
    return model if merged is None else merged


def _reparameterize(model: nn.Module) -> nn.Module:
    """Call the model's own ``reparameterize()`` (whole model) or, failing that, each submodule's."""
    if callable(getattr(model, "reparameterize", None)):
        deploy = model.reparameterize()
        for attr in ("backbone_name", "backbone_config"):
            if not hasattr(deploy, attr) and hasattr(model, attr):
                setattr(deploy, attr, getattr(model, attr))
        return deploy
    # timm-style walk: replace children that know their own deploy form, deepest first.
    for name, child in list(model.named_children()):
        new_child = _reparameterize(child)
        if new_child is not child:
            setattr(model, name, new_child)
    return model


def to_deploy(model: nn.Module, *, copy_model: bool = True) -> nn.Module:
    """Return the deploy form of ``model``: LoRA merged (safe), re-parameterised, eval, no grad.

    The input model is left untouched unless ``copy_model=False``. Raises ``ExportError`` when LoRA
    layers survive the merge and ``NumericalError`` when a weight is NaN/Inf, so a broken adaptation
    never reaches an artifact.
    """
    if not isinstance(model, nn.Module):
        raise ExportError.build("to_deploy needs a torch.nn.Module", got=type(model).__name__)
    bad = non_finite_tensors(model)
    if bad:
        raise NumericalError.build(
            "model has NaN/Inf weights", got=bad[:5], fix="re-run the adaptation or load a healthy checkpoint"
        )
    work = copy.deepcopy(model) if copy_model else model
    work = _merge_lora(work)
    work = _reparameterize(work)
    left = lora_leftovers(work)
    if left:
        raise ExportError.build(
            "unmerged LoRA layers left in the model",
            got=left[:5],
            fix="merge with dehazekit.lora.merge_lora(model) before exporting",
        )
    bad = non_finite_tensors(work)
    if bad:
        raise NumericalError.build(
            "deploy form has NaN/Inf weights after merge/reparameterisation",
            got=bad[:5],
            fix="check the adapter (lora_B, gates) for overflow",
        )
    work.eval()
    work.requires_grad_(False)
    log.debug("deploy form ready: %s", type(work).__name__)
    return work
