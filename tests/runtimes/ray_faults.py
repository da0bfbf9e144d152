"""A Dehazer factory for the Ray fault test: one actor kills its own process mid-task.

Importable by Ray's worker processes (the test passes the factory by reference), and real: the worker dies
with SIGKILL mid-task, as a lost node would, and Ray's actor restart and task retry must recover.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from dehazekit.runtimes.dehazer import Dehazer


class _KillOnce(Dehazer):
    def __init__(self, model: str, marker: str) -> None:
        super().__init__(model)
        self.marker, self.calls = marker, 0

    def process_batch(self, frames: Any) -> list:
        self.calls += 1
        if self.calls == 1:  # die on a later frame, after this task already wrote an output
            return super().process_batch(frames)
        try:  # O_EXCL: exactly one process in the whole job wins and dies
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().process_batch(frames)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class KillOnceFactory:
    """Picklable: builds a Dehazer that, in the first actor to reach its second frame, kills its process."""

    def __init__(self, model: Path, marker: Path) -> None:
        self.model, self.marker = str(model), str(marker)

    def __call__(self) -> Dehazer:
        return _KillOnce(self.model, self.marker)
