"""Backbone registry: ``@register_backbone`` on a factory, ``create_backbone(name, **overrides)``.

Each registered backbone declares what the rest of dehazekit needs to know about it without
reading its code: LoRA candidate blocks (ordered module paths), which convs inside a block LoRA
must skip, its pad multiple and minimum size, named candidate presets, and whether it exports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dehazekit.catalog import resolve_backbone
from dehazekit.runtimes.errors import ConfigError, UnknownNameError

CandidateFn = Callable[[nn.Module], list[str]]
ExcludeFn = Callable[[str, nn.Module], bool]


def _exclude_nothing(name: str, module: nn.Module) -> bool:
    return False


@dataclass(frozen=True)
class BackboneSpec:
    """Declaration of one registered backbone.

    candidates(model) -> ordered module paths of LoRA candidate blocks.
    exclude(qualified_name, module) -> True for a Conv2d/Linear inside a block that LoRA must skip
        (depthwise convs, 1x1 attention/filter generators, ...).
    presets: named subsets of candidates, e.g. DEA-Net's ``bilalora`` search space.
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str
    pad_multiple: int
    candidates: CandidateFn
    exclude: ExcludeFn = _exclude_nothing
    min_size: int = 1
    presets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exportable: bool = True
    export_note: str = ""
    tiny: bool = False
    description: str = ""
    source: str = ""
    license: str = ""

    def __post_init__(self) -> None:
        if self.pad_multiple < 1 or self.min_size < 1:
            raise ConfigError.build(
                f"backbone {self.name}: pad_multiple and min_size must be >= 1",
                got=(self.pad_multiple, self.min_size),
            )


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str, **spec_fields: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a factory ``f(**constructor_args) -> nn.Module`` under ``name``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ConfigError.build("backbone registered twice", got=name)
        _REGISTRY[name] = BackboneSpec(name=name, factory=factory, **spec_fields)
        return factory

    return decorator


def _ensure_families_loaded() -> None:
    # Importing the package registers every family module exactly once.
    import dehazekit.backbones  # noqa: F401


def get_spec(name: str) -> BackboneSpec:
    """The spec of a registered name; a family name ('convir', 'dea-net', ...) means its default variant
    (dehazekit.catalog), and an unknown name gets close matches among the user-facing names."""
    _ensure_families_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    # raises with suggestions among user-facing names for unknown ones
    resolved = resolve_backbone(name, [n for n, s in _REGISTRY.items() if not s.tiny])
    if resolved not in _REGISTRY:  # the catalogue names a backbone nobody registered: a bug, say so
        raise UnknownNameError.build(
            f"backbone {resolved!r} is in dehazekit.catalog but not registered", expected=sorted(_REGISTRY)
        )
    return _REGISTRY[resolved]


def list_backbones(include_tiny: bool = True) -> list[str]:
    _ensure_families_loaded()
    return sorted(n for n, s in _REGISTRY.items() if include_tiny or not s.tiny)


def create_backbone(name: str, **overrides: Any) -> nn.Module:
    """Build backbone ``name``; ``overrides`` are the factory's own constructor arguments.

    The returned module carries ``backbone_name`` and ``backbone_config`` (the overrides, JSON-able)
    so a saved model rebuilds without code defaults. Forward: (B, 3, H, W) float32 in [0, 1] ->
    (B, 3, H, W), with H and W multiples of the spec's pad multiple and >= its min size.
    """
    spec = get_spec(name)
    try:
        model = spec.factory(**overrides)
    except TypeError as exc:
        raise ConfigError.build(
            f"invalid overrides for backbone {name!r}",
            got=overrides,
            fix=f"check the constructor arguments ({exc})",
        ) from exc
    model.backbone_name = spec.name  # the canonical name, also when called with a family alias
    model.backbone_config = dict(overrides)
    return model


def count_parameters(name: str, **overrides: Any) -> int:
    """Parameter count without allocating weights (built on the meta device)."""
    with torch.device("meta"):
        model = create_backbone(name, **overrides)
    return sum(p.numel() for p in model.parameters())


def spec_of(model: nn.Module) -> BackboneSpec:
    name = getattr(model, "backbone_name", None)
    if name is None:
        raise ConfigError.build(
            "model was not built by create_backbone",
            got=type(model).__name__,
            fix="build it with dehazekit.create_backbone or dehazekit.load_model",
        )
    return get_spec(name)


def candidate_blocks(model: nn.Module, preset: str | None = None) -> list[str]:
    """Ordered LoRA candidate block paths of ``model`` (optionally a named preset)."""
    spec = spec_of(model)
    if preset is None or preset == "all":
        return list(spec.candidates(model))
    if preset not in spec.presets:
        raise UnknownNameError.build(
            f"unknown candidate preset {preset!r} for {spec.name}", expected=["all", *sorted(spec.presets)]
        )
    return list(spec.presets[preset])
