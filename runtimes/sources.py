"""open_source / open_sink: turn what a user typed (or passed) into a frame source or sink.

Sources: image file, folder, glob, video file, rtsp:// URL, camera index, Python iterable.
Sinks: image file, folder, video file, callback.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dehazekit.runtimes.errors import ConfigError, InputError
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.images import (
    FolderSink,
    ImageFileSink,
    folder_source,
    glob_source,
    image_source,
    is_image,
)
from dehazekit.runtimes.streams import IterableSource, OpenCVSource, camera_index, is_stream_url
from dehazekit.runtimes.video import VideoSource, is_video
from dehazekit.runtimes.video_sink import VideoSink


class Source(Protocol):
    info: SourceInfo
    skipped: SkipLog

    def __iter__(self): ...

    def close(self) -> None: ...


class Sink(Protocol):
    written: int

    def write(self, item: FrameItem, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def open_source(spec: Any, *, bgr: bool = False, max_frames: int | None = None) -> Source:
    """Pick the source for ``spec``: int/"0" camera, rtsp:// URL, glob pattern, folder, image, video,
    or any iterable of frames."""
    index = camera_index(spec)
    if index is not None:
        return OpenCVSource(index, bgr=bgr, max_frames=max_frames)
    if is_stream_url(spec):
        return OpenCVSource(spec, bgr=bgr, max_frames=max_frames)
    if isinstance(spec, (str, Path)):
        return _path_source(str(spec), bgr)
    if isinstance(spec, Iterable):
        return IterableSource(spec)
    raise InputError.build(
        "unsupported source",
        got=type(spec).__name__,
        expected="path, glob, rtsp:// URL, camera index or iterable of frames",
    )


def _path_source(text: str, bgr: bool) -> Source:
    path = Path(text).expanduser()
    if not path.exists() and globlib.has_magic(text):
        return glob_source(text, bgr)
    if not path.exists():
        raise InputError.build("input not found", got=text, fix="check the path")
    if path.is_dir():
        return folder_source(path, bgr)
    if is_image(path):
        return image_source(path, bgr)
    if is_video(path):
        return VideoSource(path, bgr)
    # unknown suffix: let PyAV decide (it reads most containers), which gives a clear VideoError if not
    return VideoSource(path, bgr)


class CallbackSink:
    """Hands every dehazed frame to ``callback(item, frame)``; for embedding and tests."""

    def __init__(self, callback: Callable[[FrameItem, np.ndarray], None]) -> None:
        self.callback = callback
        self.written = 0

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        self.callback(item, frame)
        self.written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class SideBySideSink:
    """Writes ``[input | dehazed]`` frames to ``inner``: a quick visual check of the effect."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner

    @property
    def written(self) -> int:
        return self.inner.written

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        self.inner.write(item, np.concatenate([item.image, frame], axis=1))

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


def default_output(source: Source) -> Path:
    """``x.mp4`` -> ``x_dehazed.mp4``; ``dir/`` -> ``dir_dehazed/``; streams need an explicit --out."""
    info = source.info
    if info.kind in ("camera", "stream", "iterable"):
        raise ConfigError.build(
            f"a {info.kind} source needs an output path", fix="pass --out out.mp4 or --out DIR"
        )
    if info.kind == "glob":
        return Path("dehazed")
    path = Path(info.description) if info.path is None else info.path
    if info.kind == "folder":
        return path.with_name(path.name + "_dehazed")
    return path.with_name(f"{path.stem}_dehazed{path.suffix}")


def open_sink(
    target: Any,
    source: Source,
    *,
    bgr: bool = False,
    copy_audio: bool = True,
    codec: str = "libx264",
    fps: float | None = None,
    preset: str | None = None,
) -> Sink:
    """A callable -> CallbackSink; an image suffix -> one image (single-image sources only); a video
    suffix -> VideoSink; anything else -> a folder of images. None -> ``default_output(source)``."""
    if callable(target):
        return CallbackSink(target)
    path = Path(target) if target is not None else default_output(source)
    single = source.info.kind == "image"
    if is_image(path):
        if not single:
            raise ConfigError.build(
                "an image output needs a single-image input",
                got=str(path),
                fix="write many frames to a folder (--out DIR) or a video (--out x.mp4)",
            )
        return ImageFileSink(path, bgr)
    if is_video(path):
        rate = Fraction(fps).limit_denominator(1001) if fps else None
        extra = {"preset": preset} if preset else {}
        return VideoSink(path, source.info, codec=codec, copy_audio=copy_audio, bgr=bgr, fps=rate, **extra)
    if single:
        return FolderSink(path, bgr, suffix=Path(source.info.description).suffix or ".png")
    return FolderSink(path, bgr, suffix=".png" if source.info.kind in ("video", "camera", "stream") else None)
