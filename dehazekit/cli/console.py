"""Shared CLI plumbing: one rich console, logging through rich, DehazeKitError -> clean exit."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from dehazekit.runtimes.errors import DehazeKitError

console = Console(stderr=False)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2


def is_terminal() -> bool:
    """True when stdout is an interactive terminal (rich bars); False for logs, pipes, CI and nohup."""
    return console.is_terminal


def print_line(text: str) -> None:
    """One plain line on stdout, never hard-wrapped (paths stay copyable at any width), no markup."""
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def setup_logging(verbose: bool = False) -> None:
    """Rich log lines on a terminal; plain, never-wrapped lines in logs and pipes (paths stay whole)."""
    if err_console.is_terminal:
        handler: logging.Handler = RichHandler(console=err_console, show_path=False)
        fmt = "%(message)s"
    else:
        handler, fmt = logging.StreamHandler(sys.stderr), "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=fmt, handlers=[handler], force=True
    )


def cli_errors(func: F) -> F:
    """Turn a DehazeKitError into a red one-line message and exit code 2 (no traceback); Ctrl-C and
    SIGTERM unwind (temporaries removed) and exit 130 / 143 with one line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from dehazekit.runtimes.signals import exit_code, terminate_as_interrupt

        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except DehazeKitError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from exc
        except KeyboardInterrupt as exc:
            code = exit_code(exc)
            what = "terminated (SIGTERM)" if code == 143 else "interrupted"
            err_console.print(
                f"[bold red]{what}:[/] stopped; unfinished outputs were removed", highlight=False
            )
            raise typer.Exit(code) from exc

    return wrapper  # type: ignore[return-value]
