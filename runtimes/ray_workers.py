"""The actors of the Ray engine: each holds one Dehazer (model loaded once per actor) and writes outputs.

Ray Data calls an actor with a batch of rows (a dict of numpy columns) and gets one row back per input
row. Outputs are written by the actor, atomically, to the same names the local sinks use, so a task that
Ray retries after a lost worker rewrites the same files and nothing is duplicated or half-written.
Imports nothing from Ray: these classes run the same way under any executor.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from dehazekit.runtimes.dehazer import Dehazer
from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.images import read_image
from dehazekit.runtimes.sources import SideBySideSink
from dehazekit.runtimes.video_chunks import Chunk, decode_chunk
from dehazekit.runtimes.video_sink import VideoSink

log = logging.getLogger(__name__)

DehazerFactory = Callable[[], Dehazer]


class ImageWorker:
    """Rows {index, path, name} -> dehazed images written through ``sink`` (a picklable local sink).

    Returns rows {index, item, ok, reason, backend}: ``ok`` False with the reason for unreadable inputs,
    exactly what the local ImageFilesSource lists as skipped.
    """

    def __init__(
        self, factory: DehazerFactory, sink: Any, bgr: bool = False, remote: str | None = None
    ) -> None:
        self.dehazer, self.sink, self.bgr = factory(), sink, bgr
        self.reader = _remote_reader(remote) if remote else None  # paths inside a filesystem URI
        self.backend = json.dumps(self.dehazer.describe(), default=str)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items, rows = [], []
        for index, path, name in zip(batch["index"], batch["path"], batch["name"]):
            try:
                image = (
                    self.reader.read(str(path), self.bgr)
                    if self.reader
                    else read_image(Path(str(path)), bgr=self.bgr)
                )
                items.append(FrameItem(int(index), image, str(name)))
                rows.append((int(index), str(path), True, ""))
            except InputError as exc:
                log.warning("skipping %s: %s", path, exc)
                rows.append((int(index), str(path), False, str(exc)))
        outputs = self.dehazer.stream(item.image for item in items)
        for item, frame in zip(items, outputs, strict=True):
            self.sink.write(item, frame)
        return _columns(rows, self.backend)


class ChunkWorker:
    """Rows {video, chunk, path, part, start_pts, end_pts, first_index, frames, fps, time_base} -> one
    encoded part file each (no audio: it is copied once when the parts are joined)."""

    def __init__(
        self,
        factory: DehazerFactory,
        *,
        bgr: bool = False,
        side_by_side: bool = False,
        codec: str = "libx264",
        preset: str | None = None,
    ) -> None:
        self.dehazer, self.bgr, self.side_by_side = factory(), bgr, side_by_side
        self.codec, self.preset = codec, preset
        self.backend = json.dumps(self.dehazer.describe(), default=str)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"video": [], "chunk": [], "part": [], "frames": [], "reason": []}
        for i in range(len(batch["chunk"])):
            end = int(batch["end_pts"][i])
            chunk = Chunk(
                int(batch["chunk"][i]),
                int(batch["start_pts"][i]),
                None if end < 0 else end,
                int(batch["first_index"][i]),
                int(batch["frames"][i]),
            )
            path = Path(str(batch["path"][i]))
            info = SourceInfo(
                "video",
                str(path),
                path=path,
                fps=Fraction(str(batch["fps"][i])),
                time_base=Fraction(str(batch["time_base"][i])),
            )
            frames, skipped = self._encode(path, chunk, Path(str(batch["part"][i])), info)
            for key, value in (
                ("video", int(batch["video"][i])),
                ("chunk", chunk.index),
                ("part", str(batch["part"][i])),
                ("frames", frames),
                ("reason", "; ".join(s.reason for s in skipped.entries)),
            ):
                out[key].append(value)
        return {
            **{k: np.array(v) for k, v in out.items()},
            "backend": np.array([self.backend] * len(out["chunk"])),
        }

    def _encode(self, path: Path, chunk: Chunk, part: Path, info: SourceInfo) -> tuple[int, SkipLog]:
        skipped = SkipLog()
        sink: Any = ChunkSink(
            part,
            info,
            codec=self.codec,
            copy_audio=False,
            bgr=self.bgr,
            **({"preset": self.preset} if self.preset else {}),
        )
        if self.side_by_side:
            sink = SideBySideSink(sink)
        try:
            for item, frame in _paired(self.dehazer, decode_chunk(path, chunk, self.bgr, skipped)):
                sink.write(item, frame)
            if sink.written:
                sink.close()
            else:
                skipped.add(f"{path}#chunk{chunk.index}", "no frame of this chunk could be decoded")
        except BaseException:
            sink.abort()
            raise
        return sink.written, skipped


class ChunkSink(VideoSink):
    """A VideoSink without B-frames: each part's decode timestamps then start at its first frame, so parts
    joined back to back keep monotonic timestamps (B-frames would shift the decode times of a part's first
    frames before the previous part's last ones)."""

    def _codec_options(self) -> dict[str, str]:
        return {**super()._codec_options(), "bf": "0"}


def _remote_reader(uri: str) -> Any:
    from dehazekit.runtimes.remote_files import RemoteReader

    return RemoteReader(uri)


def _paired(dehazer: Dehazer, items: Iterator[FrameItem]) -> Iterator[tuple[FrameItem, np.ndarray]]:
    """(input item, dehazed frame) pairs in order, batched inside the Dehazer like the local pipeline."""
    pending: collections.deque[FrameItem] = collections.deque()

    def images() -> Iterator[np.ndarray]:
        for item in items:
            pending.append(item)
            yield item.image

    for frame in dehazer.stream(images()):
        yield pending.popleft(), frame


def _columns(rows: list[tuple[int, str, bool, str]], backend: str) -> dict[str, np.ndarray]:
    return {
        "index": np.array([r[0] for r in rows], dtype=np.int64),
        "item": np.array([r[1] for r in rows]),
        "ok": np.array([r[2] for r in rows], dtype=bool),
        "reason": np.array([r[3] for r in rows]),
        "backend": np.array([backend] * len(rows)),
    }
