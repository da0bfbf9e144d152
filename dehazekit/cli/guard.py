"""One rule for every command that writes files: an output never replaces or lands inside an input.

Checked before any work (before torch loads, before a frame is decoded); ``--overwrite``-style flags never
apply to inputs. Folders among the inputs stand for every file under them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def _expand(inputs: Iterable[Path | str | None]) -> list[Path]:
    from dehazekit.runtimes.media import walk_files

    files: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        if path.is_dir():
            files += list(walk_files(path))
        elif path.exists():
            files.append(path)
    return files


def model_files(path: Path | str | None) -> list[Path]:
    """The files a model argument is read from: a model folder's weights and model.json, or the file."""
    if path is None:
        return []
    path = Path(path)
    return [path / "model.safetensors", path / "model.json"] if path.is_dir() else [path]


def guard_outputs(
    outputs: Iterable[Path | str],
    inputs: Iterable[Path | str | None],
    flag: str = "--out",
    folders: Iterable[Path | str] = (),
) -> None:
    """Raise OutputError if a file in ``outputs`` is an input, or an output folder in ``folders`` holds one.

    ``outputs``: files the command will write; ``folders``: folders it will fill with files whose names are
    not known yet (synthetic sets); ``inputs``: files or folders it reads.
    """
    from dehazekit.runtimes.errors import OutputError
    from dehazekit.runtimes.media import refuse_overwriting_inputs

    files = _expand(inputs)
    refuse_overwriting_inputs(outputs, files, flag)
    for folder in folders:
        real = Path(folder).resolve()
        inside = next((f for f in files if f.resolve().is_relative_to(real)), None)
        if inside is not None:
            raise OutputError.build(
                "the output folder holds an input",
                got=f"{flag} writes into {folder}, which contains the input {inside}",
                fix=f"choose another {flag} (inputs are never overwritten)",
            )


def clean_stale_temporaries(folder: Path | str, recursive: bool = False) -> int:
    """Remove temporaries that killed dehazekit runs left in ``folder`` and say so; returns the count."""
    from dehazekit.cli.console import err_console
    from dehazekit.runtimes.io_utils import remove_stale_temp_files

    removed = remove_stale_temp_files(folder, recursive=recursive)
    if removed:
        what = f"removed {len(removed)} temporary file(s) left in {folder} by an earlier killed run"
        err_console.print(what, highlight=False)
    return len(removed)
