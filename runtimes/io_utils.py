"""Atomic file writes: a reader never sees a half-written artifact, a failure leaves nothing behind.

Temporaries are named ``.<stem>.dk<pid>-<random><suffix>`` beside the target, so a later run can tell the
leftovers of a killed run (owner process gone) from the files of a run still in progress, and remove them.
Operating-system write failures (read-only folder, permission, disk full, file too large) become one
``OutputError`` line naming the path instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dehazekit.runtimes.errors import OutputError

log = logging.getLogger(__name__)

TEMP_MARK = ".dk"  # between the stem and the owner pid: ".<stem>.dk<pid>-<random><suffix>"
_TEMP_RE = re.compile(r"^\.(?P<stem>.*)\.dk(?P<pid>\d+)-[A-Za-z0-9_]{8}(?P<suffix>\.[^./]*)?$")

# errno -> (what went wrong, how to fix it); anything else is re-raised unchanged
_WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space there or write elsewhere (--out)"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or write elsewhere (--out)"),
    errno.EFBIG: ("file too large for the device or the process limit", "write elsewhere (--out)"),
    errno.EROFS: ("the file system is read-only", "write to a writable folder (--out)"),
    errno.EACCES: ("permission denied", "write to a folder you own (--out) or fix its permissions"),
    errno.EPERM: ("operation not permitted", "write to a folder you own (--out) or fix its permissions"),
}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, exc: OSError, needed: int | None = None) -> OutputError | None:
    """The one-line OutputError for an OS write failure on ``path``, or None if it is not one."""
    if exc.errno not in _WRITE_ERRORS:
        return None
    what, fix = _WRITE_ERRORS[exc.errno]
    got = f"{what} ({os.strerror(exc.errno)})"
    if needed:
        got += f"; about {needed / 1e6:.1f} MB needed"
    return OutputError.build(f"cannot write {path}", got=got, fix=fix)


@contextlib.contextmanager
def translate_write_errors(path: str | Path, needed: int | None = None) -> Iterator[None]:
    """Turn ENOSPC/EROFS/EACCES/... raised inside the block into an OutputError naming ``path``."""
    try:
        yield
    except OSError as exc:
        err = write_error(Path(path), exc, needed)
        if err is None:
            raise
        raise err from exc


def temp_name_prefix(path: Path) -> str:
    return f".{path.stem}{TEMP_MARK}{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success.

    The temporary keeps the target's suffix (or ``suffix``) because writers such as PyAV and
    onnx pick the format from it. Whatever happens inside (an error, Ctrl-C, SIGTERM), the temporary
    is removed and ``path`` is either the complete new file or untouched.
    """
    path = Path(path)
    with translate_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=temp_name_prefix(path), suffix=suffix or path.suffix, dir=path.parent
        )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; artifacts should get the permissions a plain open() would give them.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        with translate_write_errors(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp, translate_write_errors(path, needed=len(data)):
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# --- leftovers of killed runs ---------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_temp_name(name: str) -> bool:
    return _TEMP_RE.match(name) is not None


def stale_temp_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Temporaries left in ``folder`` by dehazekit runs whose process no longer exists (kill -9, power
    loss). Temporaries of live runs are not listed, so two runs into one folder do not clash."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*") if recursive else folder.glob(".*")
    stale = []
    for path in found:
        match = _TEMP_RE.match(path.name)
        if match and path.is_file() and not _pid_alive(int(match["pid"])):
            stale.append(path)
    return sorted(stale)


def remove_stale_temp_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete :func:`stale_temp_files` and return them (callers report what was removed)."""
    removed = []
    for path in stale_temp_files(folder, recursive):
        try:
            path.unlink()
        except OSError as exc:  # reported by the caller's listing; never fatal
            log.warning("could not remove stale temporary %s: %s", path, exc)
            continue
        log.info("removed %s, left by an earlier run that was killed", path)
        removed.append(path)
    return removed
