"""Live and in-memory sources: rtsp:// URLs and camera indices through OpenCV (optional), and Python
iterables of frames."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import InputError, VideoError, missing_dependency
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.processing import check_frame

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise missing_dependency("opencv-python", None, "reading rtsp:// streams and cameras") from exc
    return cv2


class OpenCVSource:
    """cv2.VideoCapture on a camera index or stream URL; frames arrive BGR and are flipped unless ``bgr``.

    ``max_frames`` bounds an otherwise endless camera; Ctrl-C also ends it cleanly.
    """

    def __init__(self, target: int | str, bgr: bool = False, max_frames: int | None = None) -> None:
        cv2 = _cv2()
        self.target, self.bgr, self.max_frames = target, bgr, max_frames
        self.skipped = SkipLog()
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            raise VideoError.build(
                "cannot open camera/stream",
                got=str(target),
                fix="check the camera index or URL (try it with ffplay)",
            )
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        size = (
            int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        kind = "camera" if isinstance(target, int) else "stream"
        self.info = SourceInfo(
            kind,
            str(target),
            fps=Fraction(fps).limit_denominator(1001) if fps > 0 else None,
            size=size if size[0] > 0 else None,
            frame_count=max_frames,
        )

    def __iter__(self) -> Iterator[FrameItem]:
        index = 0
        while self.max_frames is None or index < self.max_frames:
            ok, frame = self.capture.read()
            if not ok:
                break
            if frame.ndim == 2:  # some cameras deliver greyscale
                frame = np.repeat(frame[:, :, None], 3, axis=2)
            image = frame if self.bgr else np.ascontiguousarray(frame[..., ::-1])
            yield FrameItem(index, image, f"frame_{index:06d}")
            index += 1

    def close(self) -> None:
        self.capture.release()


class IterableSource:
    """Frames from any Python iterable of uint8 (H, W, 3) arrays; a bad frame is an error, not a skip,
    because the caller produced it."""

    def __init__(self, frames: Iterable[np.ndarray], fps: Fraction | None = None) -> None:
        self.frames = frames
        self.skipped = SkipLog()
        self.info = SourceInfo("iterable", type(frames).__name__, fps=fps)

    def __iter__(self) -> Iterator[FrameItem]:
        for index, frame in enumerate(self.frames):
            yield FrameItem(index, check_frame(frame, f"frame {index}"), f"frame_{index:06d}")

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if callable(close):
            close()


def camera_index(spec: object) -> int | None:
    """``0``, ``"0"`` or ``"camera:0"`` -> 0; anything else -> None."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    if isinstance(spec, str):
        text = spec.removeprefix("camera:")
        if text.isdigit():
            return int(text)
    return None


def is_stream_url(spec: object) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES)


def check_not_empty(info: SourceInfo) -> None:
    if info.frame_count == 0:
        raise InputError.build("source has no frames", got=info.description)
