"""One progress reporter for every long loop (adapt, pretrain, run, export): step, rate, ETA, metrics.

numpy-free and torch-free, so runtimes, dehazekit core and the CLI all share it. A reporter is fed
``update(step, **metrics)`` and hands a formatted line to ``emit`` at a steady wall-clock interval
(plus the first and the last step), e.g. for logs, pipes, CI and nohup runs; terminals get a rich bar
from the CLI, fed from the same numbers (``rate``, ``eta_s``).

The rate is measured from the reporter's start to the latest step, so the first reported rate covers
one real step (no "443655 step/s" from a zero-length interval) and the ETA exists from step 1.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("dehazekit.progress")

DEFAULT_INTERVAL_S = 10.0
Emit = Callable[[str], None]


def format_seconds(seconds: float | None) -> str:
    """'1:02:03' / '4:05'; '?' when unknown."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _format_metric(name: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{name} {value:.4g}"
    return f"{name} {value}"


class ProgressReporter:
    """Steady progress lines for a loop of ``total`` steps (``total=None``: open-ended, no ETA).

    ``emit`` receives each line (default: the ``dehazekit.progress`` logger at INFO);
    ``interval_s`` is the wall time between lines; ``start_step`` lets a resumed loop measure its rate
    from where it restarted; ``unit`` names a step ("step", "frame", ...).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        emit: Emit | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        start_step: int = 0,
        unit: str = "step",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.emit = emit if emit is not None else log.info
        self.interval_s = float(interval_s)
        self.clock = clock
        self.start_time = clock()
        self.start_step = self.step = int(start_step)
        self.metrics: dict[str, Any] = {}
        self._last_emit: float | None = None
        self._busy_s, self._timed = 0.0, 0  # from step_s: time spent in the steps themselves

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.start_time

    @property
    def rate(self) -> float | None:
        """Steps per second: measured step times when the caller gives them, else wall time since the
        start (None before the first step)."""
        if self._timed > 0 and self._busy_s > 0:
            return self._timed / self._busy_s
        done, elapsed = self.step - self.start_step, self.elapsed_s
        return done / elapsed if done > 0 and elapsed > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(self.total - self.step, 0) / rate

    def line(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        rate = self.rate
        parts = [f"{self.label} {self.step}{total}"]
        if rate is not None:
            parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}")
        if self.total is not None:
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        parts.append(f"elapsed {format_seconds(self.elapsed_s)}")
        parts += [_format_metric(k, v) for k, v in self.metrics.items()]
        return "  ".join(parts)

    def update(self, step: int, *, step_s: float | None = None, **metrics: Any) -> None:
        """Record ``step`` (steps done so far), optionally how long that step took, and its metrics;
        emit a line when one is due."""
        if step_s is not None:
            self._busy_s += float(step_s)
            self._timed += max(int(step) - self.step, 1)
        self.step = int(step)
        self.metrics.update({k: v for k, v in metrics.items() if v is not None})
        now = self.clock()
        last = self.total is not None and self.step >= self.total
        due = self._last_emit is None or now - self._last_emit >= self.interval_s
        if due or last:
            self._last_emit = now
            self.emit(self.line())


class StageProgress:
    """A progress callback for loops that report dicts: ``{"stage", "step", "total", "step_s"?, ...}``.

    One ProgressReporter per stage; numeric fields other than the bookkeeping ones (and those in
    ``hide``) become the line's metrics. This is the default progress of ``dehazekit.adapt`` and
    ``pretrain`` (lines through logging); the CLI passes ``emit`` to print instead.
    """

    _BOOKKEEPING = frozenset({"stage", "step", "total", "step_s"})

    def __init__(
        self,
        emit: Emit | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        metrics: tuple[str, ...] | None = None,
    ) -> None:
        self.emit, self.interval_s, self.metrics = emit, interval_s, metrics
        self.reporters: dict[str, ProgressReporter] = {}

    def reporter(self, event: dict[str, Any]) -> ProgressReporter:
        stage = str(event.get("stage", "progress"))
        if stage not in self.reporters:
            total = event.get("total")
            first = int(event["step"]) - (1 if event.get("step_s") is not None else 0)
            self.reporters[stage] = ProgressReporter(
                stage,
                None if total is None else int(total),
                emit=self.emit,
                interval_s=self.interval_s,
                start_step=max(first, 0),
            )
        return self.reporters[stage]

    def __call__(self, event: dict[str, Any]) -> None:
        names = (
            self.metrics
            if self.metrics is not None
            else [k for k, v in event.items() if k not in self._BOOKKEEPING and isinstance(v, (int, float))]
        )
        self.reporter(event).update(
            int(event["step"]), step_s=event.get("step_s"), **{k: event.get(k) for k in names}
        )


def estimate_wall_s(
    seconds_per_step: dict[str, float], steps: dict[str, int], overhead_s: float = 0.0
) -> float:
    """Wall time of a multi-stage loop from measured seconds per step of each stage."""
    return overhead_s + sum(seconds_per_step[k] * steps.get(k, 0) for k in seconds_per_step)


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h', '1h30m', '600' (seconds) -> seconds. Raises ValueError on anything else."""
    import re

    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text):
        raise ValueError(f"not a duration: {text!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_time_budget(value: str | float | int) -> float:
    """A ``--time-budget`` value (a duration string or seconds) -> seconds > 0, or one ConfigError line."""
    from dehazekit.runtimes.errors import ConfigError

    seconds: object = value
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ConfigError.build(
                "bad --time-budget", got=value, expected="a duration such as 90s, 10m, 1h30m"
            ) from None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError.build("--time-budget must be > 0", got=value, expected="e.g. 10m")
    return float(seconds)
