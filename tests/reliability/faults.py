"""Run `dehazekit` in a child process so real signals, resource limits and kills can hit it."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "dehazekit.cli.main", *map(str, args)]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), COLUMNS="200")
    env.update(extra)
    return env


def run_limited(
    *args: object, limits: dict[int, int] | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """Run with resource limits (e.g. {resource.RLIMIT_FSIZE: bytes}); SIGXFSZ ignored so an over-size
    write fails with EFBIG, as a full disk fails with ENOSPC, instead of killing the process."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for which, value in (limits or {}).items():
            resource.setrlimit(which, (value, value))

    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
        preexec_fn=preexec,
        cwd=ROOT,
        check=False,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(
    args: list[object], ready: Callable[[], bool], sig: int, timeout: float = 120, **env: str
) -> tuple[int, str]:
    """Start the command, wait until ``ready()`` (e.g. a temporary file exists), send ``sig``, wait."""
    proc = subprocess.Popen(
        command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(**env),
        cwd=ROOT,
        # A shell starts background jobs with SIGINT ignored and children inherit that, so a suite run
        # with `&` would see Ctrl-C ignored; give the child the default disposition a terminal gives it.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate()[0]
                raise AssertionError(f"never became ready (rc {proc.returncode}):\n{out}")
            time.sleep(0.01)
        proc.send_signal(sig)
        out = proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


def temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.is_file())
