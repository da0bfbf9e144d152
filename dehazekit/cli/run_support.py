"""The parts of `dehazekit run` around the pipeline: output safety, progress and the summary.

Kept apart from run_cmd so the command itself stays a short, readable sequence of steps.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dehazekit.cli.console import console

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # interval of plain progress lines when stdout is not a terminal (logs, pipes, CI)


# --- outputs: never over an input, never twice over our own outputs, no leftovers ------------------
@dataclass
class OutputPlan:
    """What the safety checks did before any work: inputs excluded, stale temporaries removed."""

    excluded: int = 0
    removed_temps: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown as "note" rows in the summary


def _inner(sink: Any) -> Any:
    return getattr(sink, "inner", sink)


def _inputs_and_outputs(src: Any, sink: Any) -> tuple[list[Path], list[Path]]:
    """Every input file the run reads and every output file it will write (as far as known now)."""
    from dehazekit.runtimes.images import FolderSink

    files = list(getattr(src, "files", []))
    if getattr(src.info, "path", None) is not None and not files:
        files = [src.info.path]
    sink = _inner(sink)
    if isinstance(sink, FolderSink):
        names = src.names() if hasattr(src, "names") else []
        return files, [sink.path_for(name) for name in names]
    path = getattr(sink, "path", None)
    return files, [path] if path is not None else []


def _output_root(sink: Any) -> Path | None:
    sink = _inner(sink)
    folder = getattr(sink, "folder", None)
    return Path(folder) if folder is not None else (Path(sink.path).parent if hasattr(sink, "path") else None)


def prepare_outputs(src: Any, sink: Any) -> OutputPlan:
    """Before any work: refuse outputs that are inputs; keep earlier outputs under the input tree out of
    the input listing; remove temporaries of killed runs; fail early on an unwritable target."""
    from dehazekit.runtimes.io_utils import remove_stale_temp_files, translate_write_errors
    from dehazekit.runtimes.media import refuse_overwriting_inputs

    plan = OutputPlan()
    folder = getattr(_inner(sink), "folder", None)
    if folder is not None and getattr(src, "root", None) is not None:
        out_real, root_real = Path(folder).resolve(), Path(src.root).resolve()
        if out_real != root_real and out_real.is_relative_to(root_real):
            plan.excluded = src.exclude_under(Path(folder))  # earlier outputs are not inputs
    inputs, outputs = _inputs_and_outputs(src, sink)
    refuse_overwriting_inputs(outputs, inputs)
    root = _output_root(sink)
    if root is not None:
        plan.removed_temps = remove_stale_temp_files(root, recursive=folder is not None)
        _check_writable(root, translate_write_errors)
    return plan


def _check_writable(root: Path, translate: Any) -> None:
    """Refuse a read-only or forbidden target before decoding a single frame (creates nothing)."""
    import errno

    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only_fs(existing) else errno.EACCES
        with translate(root):
            raise OSError(code, os.strerror(code), str(existing))


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# --- progress: a bar on a terminal, steady plain lines elsewhere --------------------------------------
class LineProgress:
    """One line every ``interval`` seconds: frames done/total, rate, ETA (for logs, pipes and CI)."""

    def __init__(self, total: int | None, interval: float) -> None:
        self.total, self.interval = total, interval
        self.start = self.last = time.perf_counter()

    def __enter__(self) -> LineProgress:  # noqa: PYI034 - typing.Self needs Python 3.11
        self.start = self.last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, report: Any) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval and report.frames != self.total:
            return
        self.last = now
        elapsed = now - self.start
        rate = report.frames / elapsed if elapsed > 0 else 0.0
        done = f"{report.frames}/{self.total}" if self.total else str(report.frames)
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {_clock((self.total - report.frames) / rate)}"
        console.print(
            f"dehazing: {done} frames, {rate:.2f} fps, elapsed {_clock(elapsed)}{eta}", highlight=False
        )


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress(total: int | None) -> tuple[Any, Any]:
    """(context manager, on_frame callback): a rich bar on a terminal, else :class:`LineProgress`."""
    if not console.is_terminal:
        line = LineProgress(total, float(os.environ.get("DEHAZEKIT_PROGRESS_SECONDS", PROGRESS_SECONDS)))
        return line, line
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]dehazing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
    ]
    bar = Progress(*columns, console=console, transient=False)
    task = bar.add_task("run", total=total, fps=0.0)
    start = time.perf_counter()

    def on_frame(report: Any) -> None:
        elapsed = time.perf_counter() - start
        bar.update(task, completed=report.frames, fps=report.frames / elapsed if elapsed > 0 else 0.0)

    return bar, on_frame


# --- summary ----------------------------------------------------------------------------------------
def summary(report: Any, backend: dict[str, Any], route: str, threads: str, plan: OutputPlan) -> None:
    """The closing table: rate, which runtime ran (ONNX fast path or the torch fallback and why), threads,
    tiling, output, and everything skipped or cleaned up."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rows = [
        ("frames", str(report.frames)),
        ("seconds", f"{report.seconds:.2f}"),
        ("fps", f"{report.fps:.2f}"),
        ("backend", f"{backend.get('backend')} ({route})"),
        ("providers", ", ".join(map(str, backend.get("providers", [])))),
        ("threads", threads),
        ("tiling", str(backend.get("tiling", "whole frames"))),
        ("output", str(report.output)),
        ("skipped", str(len(report.skipped))),
    ]
    if plan.excluded:
        rows.append(("excluded", f"{plan.excluded} earlier outputs inside the input folder"))
    if plan.removed_temps:
        rows.append(("cleaned", f"{len(plan.removed_temps)} temporary file(s) of an earlier killed run"))
    rows += [("note", note) for note in plan.notes]
    for key, value in rows:
        table.add_row(f"[bold]{key}", escape(value))
    console.print(table)
    for skipped in report.skipped:
        console.print(
            f"[yellow]skipped[/] {escape(skipped.item)}: {escape(skipped.reason)}",
            highlight=False,
            soft_wrap=True,
        )
