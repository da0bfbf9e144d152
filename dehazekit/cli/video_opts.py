"""The video options of `dehazekit run`: --stabilize, --bank/--adapter, --route (kept apart from run_cmd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dehazekit.cli.console import console

ROUTES = ("off", "auto")


def wrap_dehazer(dehazer: Any, *, stabilize: bool, route: str) -> tuple[Any, Any]:
    """(what the pipeline runs, the router or None): routing innermost, the stabiliser on its output."""
    from dehazekit.runtimes.errors import ConfigError

    if route not in ROUTES:
        raise ConfigError.build("unknown --route", got=route, expected=list(ROUTES))
    router = None
    if route == "auto":
        from dehazekit.runtimes.routing import RoutedDehazer, Router

        bank = getattr(dehazer.backend, "bank", None)
        if bank is None:
            raise ConfigError.build("--route auto needs an adapter bank", fix="pass --bank BANK_DIR")
        router = Router(bank.signatures())
        dehazer = RoutedDehazer(dehazer, router)
    if stabilize:
        from dehazekit.runtimes.stabilize import StabilizedDehazer

        dehazer = StabilizedDehazer(dehazer)
    return dehazer, router


def check_model_choice(model: Path | None, bank: Path | None, adapter: str | None) -> None:
    from dehazekit.runtimes.errors import ConfigError

    if bank is not None and model is not None:
        raise ConfigError.build("--model and --bank both given", fix="pass one of them")
    if adapter is not None and bank is None:
        raise ConfigError.build("--adapter needs --bank", got=adapter, fix="pass --bank BANK_DIR")


def print_routes(router: Any) -> None:
    if router is None:
        return
    for seg in router.report():
        console.print(
            f"frames {seg['start']}-{seg['end']}: adapter [bold]{seg['adapter']}[/] "
            f"(mean haze score {seg['mean_score']:.3f})",
            highlight=False,
        )
