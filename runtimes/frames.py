"""The small records that travel through sources, the pipeline and sinks."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass
class FrameItem:
    """One frame: uint8 (H, W, 3) in the pipeline's channel order, with where it came from.

    ``name`` is what a folder sink writes it as (relative path for folders, ``frame_000001`` for
    streams); ``pts``/``time_base`` carry the original timestamp so variable frame rate survives.
    """

    index: int
    image: np.ndarray
    name: str
    pts: int | None = None
    time_base: Fraction | None = None


@dataclass
class SourceInfo:
    """What a sink needs to reproduce the input: kind, size (W, H), rate, count, audio."""

    kind: str
    description: str
    path: Path | None = None
    fps: Fraction | None = None
    time_base: Fraction | None = None
    size: tuple[int, int] | None = None
    frame_count: int | None = None
    has_audio: bool = False


@dataclass
class Skipped:
    """An input item that was not processed, and why (reported, never silently dropped)."""

    item: str
    reason: str


@dataclass
class SkipLog:
    entries: list[Skipped] = field(default_factory=list)

    def add(self, item: str, reason: str) -> None:
        self.entries.append(Skipped(item, reason))

    def __len__(self) -> int:
        return len(self.entries)
