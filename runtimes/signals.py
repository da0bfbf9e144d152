"""SIGTERM handled like Ctrl-C: the same unwinding removes temporaries and aborts half-written outputs.

``kill PID`` (systemd, docker stop, a CI timeout) sends SIGTERM, whose default action kills the process
before any ``finally`` runs, leaving temporaries behind. Inside ``terminate_as_interrupt()`` SIGTERM raises
``Terminated`` (a KeyboardInterrupt) in the main thread instead; callers exit with 128 + 15 = 143.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated("terminated by SIGTERM")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM unwinds like Ctrl-C (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(exc: KeyboardInterrupt) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
