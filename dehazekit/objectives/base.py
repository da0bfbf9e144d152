"""Objective registry. An objective scores a network's output against its own input, without labels.

Protocol: an ``nn.Module`` whose ``forward(hazy, out) -> Tensor`` returns a scalar loss (mean over the
batch); ``hazy`` and ``out`` are (B, 3, H, W) float32, ``hazy`` in [0, 1]. The search and fine-tune
code only ever sees this protocol, never which objective it is.

Adding an objective (two places):
  1. its module: the factory, registered with the AdaptConfig fields that feed its keyword arguments,
     ``@register_objective("name", options={"factory_kwarg": "adapt_config_field"})``; import the module
     in ``dehazekit/objectives/__init__.py`` so it registers;
  2. ``dehazekit/adapt/config.py``: one ``field(default=..., metadata=_help("..."))`` per option.
    ``dehazekit adapt``
     generates its ``--flag`` from that field, and ``AdaptConfig.objective_options()`` routes the values
     to the factory through the mapping above. A test checks that the factory's own keyword defaults
     equal the config's (tests/dehazekit/adapt/test_config_cli.py), so a default has one value.
An objective without options needs only step 1.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from torch import Tensor, nn

from dehazekit.runtimes.errors import ConfigError, UnknownNameError

ObjectiveFactory = Callable[..., nn.Module]
_OBJECTIVES: dict[str, ObjectiveFactory] = {}
# Names users bring from papers and other tools -> our objective (suggested, never silently substituted).
ALIASES: dict[str, tuple[str, ...]] = {
    "clip": ("h2c",),
    "haze2clear": ("h2c",),
    "dark-channel": ("dcp",),
    "dark_channel": ("dcp",),
    "dcp-prior": ("dcp",),
}


_OPTIONS: dict[str, dict[str, str]] = {}  # objective -> {factory keyword: AdaptConfig field}


def register_objective(
    name: str, options: dict[str, str] | None = None
) -> Callable[[ObjectiveFactory], ObjectiveFactory]:
    """Register ``factory(**kwargs) -> nn.Module`` as objective ``name``.

    ``options`` maps the factory's keyword arguments to the AdaptConfig fields that set them (and so
    to ``dehazekit adapt`` flags), e.g. ``{"clip": "clip", "pretrained": "clip_pretrained"}``.
    """

    def decorator(factory: ObjectiveFactory) -> ObjectiveFactory:
        if name in _OBJECTIVES:
            raise ConfigError.build("objective registered twice", got=name)
        _OBJECTIVES[name] = factory
        _OPTIONS[name] = dict(options or {})
        return factory

    return decorator


def objective_option_fields(name: str) -> dict[str, str]:
    """{factory keyword: AdaptConfig field} registered with objective ``name`` ({} when unknown)."""
    import dehazekit.objectives  # noqa: F401  (registers the built-ins)

    return dict(_OPTIONS.get(name, {}))


def list_objectives() -> list[str]:
    import dehazekit.objectives  # noqa: F401  (registers the built-ins)

    return sorted(_OBJECTIVES)


class WeightedSum(nn.Module):
    """sum_i w_i * objective_i(hazy, out)."""

    def __init__(self, terms: list[tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([obj for _, obj in terms])

    def forward(self, hazy: Tensor, out: Tensor) -> Tensor:
        return sum(w * term(hazy, out) for w, term in zip(self.weights, self.terms))


def parse_objective_spec(spec: str) -> list[tuple[float, str]]:
    """'h2c' -> [(1, 'h2c')]; 'h2c+dcp' -> [(1, 'h2c'), (1, 'dcp')]; '0.5*h2c+2*dcp' -> weighted."""
    terms = []
    for part in spec.replace(" ", "").split("+"):
        weight, _, name = part.rpartition("*")
        try:
            terms.append((float(weight) if weight else 1.0, name))
        except ValueError:
            raise ConfigError.build(
                "bad objective weight", got=part, expected="NAME or WEIGHT*NAME"
            ) from None
    if not terms or any(not name for _, name in terms):
        raise ConfigError.build("empty objective spec", got=spec, expected="e.g. h2c, dcp, h2c+dcp")
    return terms


def create_objective(spec: str, options: dict[str, dict[str, Any]] | None = None) -> nn.Module:
    """Build an objective from a spec ('h2c', 'dcp', 'h2c+dcp', '0.5*h2c+dcp').

    ``options`` maps objective name -> keyword arguments for its factory (e.g. CLIP model name).
    """
    import dehazekit.objectives  # noqa: F401

    options = options or {}
    built = []
    for weight, name in parse_objective_spec(spec):
        if name not in _OBJECTIVES:
            close = difflib.get_close_matches(name, list(_OBJECTIVES), n=3, cutoff=0.4)
            close = [m for m in ALIASES.get(name.lower(), ()) if m in _OBJECTIVES] + close
            raise UnknownNameError.build(
                f"unknown objective {name!r}",
                expected=sorted(_OBJECTIVES),
                fix=f"did you mean {', '.join(close)}?" if close else None,
            )
        built.append((weight, _OBJECTIVES[name](**options.get(name, {}))))
    if len(built) == 1 and built[0][0] == 1.0:
        return built[0][1]
    return WeightedSum(built)


def attach_network(objective: nn.Module, model: nn.Module) -> None:
    """Hand the network being adapted to every objective term that asks for it (``attach``; e.g. rehaze).

    A generic hook: the search and fine-tune code still only call ``objective(hazy, out)``.
    """
    for term in objective.modules():
        if hasattr(term, "attach"):
            term.attach(model)


def remember_inputs(objective: nn.Module, batches: list[Tensor]) -> None:
    """Tell every objective term that can reuse per-input work (``remember_inputs``, e.g. h2c's CLIP
    embedding of the hazy crop) that these exact batches come back every epoch (a fixed crop set)."""
    for term in objective.modules():
        if hasattr(term, "remember_inputs"):
            term.remember_inputs(batches)
