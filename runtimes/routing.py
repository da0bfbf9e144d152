"""Route each frame to the bank adapter made for its haze: a cheap haze estimate plus hysteresis.

``haze_score(frame)`` is the mean dark channel (He et al.: haze-free outdoor patches have some
channel near 0, haze lifts them all) of a ~64 px thumbnail with a 3x3 minimum, blended with the
lack of contrast (1 - 4 x luma std, clipped): both rise with haze density. It costs well under a
millisecond at 720p because it reads only a strided thumbnail.

``Router`` smooths the score over time (EMA), finds the adapter whose signature (the mean score
of the images it was adapted on, stored in the bank manifest) is nearest, and switches only when
another adapter has been nearer by ``margin`` for ``hold`` consecutive frames, so noise near a
boundary does not make it thrash. Every segment (first frame, last frame, adapter, mean score) is
kept and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import ConfigError

log = logging.getLogger(__name__)

THUMB_SIDE = 64


def haze_score(frame: np.ndarray) -> float:
    """uint8 (H, W, 3) RGB or BGR -> haze density estimate in [0, 1] (higher = hazier)."""
    step = max(1, max(frame.shape[:2]) // THUMB_SIDE)
    thumb = frame[::step, ::step].astype(np.float32) * np.float32(1 / 255)
    dark = thumb.min(axis=2)
    padded = np.pad(dark, 1, mode="edge")
    h, w = dark.shape
    dark = np.min([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    low_contrast = float(np.clip(1.0 - 4.0 * thumb.mean(axis=2).std(), 0.0, 1.0))
    return 0.5 * float(dark.mean()) + 0.5 * low_contrast


@dataclass
class Segment:
    adapter: str
    start: int
    end: int
    scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "start": self.start,
            "end": self.end,
            "mean_score": float(np.mean(self.scores)) if self.scores else None,
        }


class Router:
    """Picks an adapter per frame from ``signatures`` (adapter -> haze score it was made for)."""

    def __init__(
        self, signatures: Mapping[str, float], *, margin: float = 0.03, hold: int = 8, smooth: float = 0.7
    ) -> None:
        if not signatures:
            raise ConfigError.build(
                "routing needs at least one adapter with a haze signature",
                fix="rebuild the bank with `dehazekit bank build --haze NAME=SCORE`",
            )
        if margin < 0 or hold < 1 or not 0 <= smooth < 1:
            raise ConfigError.build(
                "router margin >= 0, hold >= 1, 0 <= smooth < 1", got=(margin, hold, smooth)
            )
        self.signatures = dict(signatures)
        self.margin, self.hold, self.smooth = margin, hold, smooth
        self.segments: list[Segment] = []
        self._level: float | None = None
        self._pending: tuple[str, int] | None = None
        self._frame = 0

    @property
    def current(self) -> str | None:
        return self.segments[-1].adapter if self.segments else None

    def nearest(self, score: float) -> str:
        return min(self.signatures, key=lambda name: abs(self.signatures[name] - score))

    def step(self, score: float) -> str:
        """Feed one frame's haze score; returns the adapter to run it with."""
        self._level = score if self._level is None else self.smooth * self._level + (1 - self.smooth) * score
        best, current = self.nearest(self._level), self.current
        if current is None:
            self._open(best)
        elif best != current and self._gap(current, best) > self.margin:
            count = self._pending[1] + 1 if self._pending and self._pending[0] == best else 1
            self._pending = (best, count)
            if count >= self.hold:
                self._open(best)
        else:
            self._pending = None
        segment = self.segments[-1]
        segment.end = self._frame
        segment.scores.append(score)
        self._frame += 1
        return segment.adapter

    def route(self, frame: np.ndarray) -> str:
        return self.step(haze_score(frame))

    def _gap(self, current: str, best: str) -> float:
        return abs(self.signatures[current] - self._level) - abs(self.signatures[best] - self._level)

    def _open(self, name: str) -> None:
        if self.segments:
            log.info("route: frames %s", _describe(self.segments[-1]))
        self.segments.append(Segment(name, self._frame, self._frame))
        self._pending = None

    def report(self) -> list[dict[str, Any]]:
        """All segments so far; logs the last (still open) one."""
        if self.segments:
            log.info("route: frames %s", _describe(self.segments[-1]))
        return [s.to_dict() for s in self.segments]


def _describe(segment: Segment) -> str:
    d = segment.to_dict()
    return f"{d['start']}-{d['end']}: adapter {d['adapter']} (mean haze score {d['mean_score']:.3f})"


class RoutedDehazer:
    """Wraps a bank Dehazer: each frame runs with the adapter the router picks (switched between frames)."""

    def __init__(self, dehazer: Any, router: Router) -> None:
        self.dehazer, self.router = dehazer, router

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        choices = [self.router.route(f) for f in frames]
        outputs: list[np.ndarray] = []
        start = 0
        while start < len(frames):  # consecutive frames with one adapter still run as one batch
            stop = start + 1
            while stop < len(frames) and choices[stop] == choices[start]:
                stop += 1
            self.dehazer.use(choices[start])
            outputs += self.dehazer.process_batch(frames[start:stop])
            start = stop
        return outputs

    def submit_batch(self, frames: Sequence[np.ndarray]) -> Any:
        # Synchronous on purpose: switching adapters while an earlier batch is still in flight on the
        # device would run that batch with the wrong weights.
        from dehazekit.runtimes.dehazer import PendingBatch

        return PendingBatch(ticket=None, pad=None, done=self.process_batch(frames))

    def collect_batch(self, pending: Any) -> list[np.ndarray]:
        return pending.done

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.process_batch([frame])[0]

    def describe(self) -> dict[str, object]:
        return {**self.dehazer.describe(), "route": "auto"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dehazer, name)

    def __enter__(self) -> RoutedDehazer:  # noqa: PYI034 - a plain class, not meant for subclassing
        return self

    def __exit__(self, *exc: object) -> None:
        self.dehazer.close()
