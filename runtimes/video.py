"""Video files through PyAV: decode with timestamps, encode H.264 (mpeg4 fallback), copy audio.

Frames are decoded through ``media.decode_video_frames``, so a phone clip's display rotation is applied
to the pixels: outputs are upright and carry no rotation tag.

Timestamps are carried from input to output unchanged, so variable-frame-rate phone footage keeps its
timing. Damaged packets are skipped and counted; a truncated file yields every frame before the cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import missing_dependency
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.media import VIDEO_SUFFIXES, decode_video_frames, is_video, open_video  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

DEFAULT_FPS = Fraction(25)


def _av():
    try:
        import av
    except ImportError as exc:
        raise missing_dependency("av", None, "video decoding and encoding") from exc
    return av


class VideoSource:
    """Frames of a video file's first video stream as uint8 RGB (or BGR) with their pts."""

    def __init__(self, path: Path, bgr: bool = False) -> None:
        self.path, self.bgr = path, bgr
        self.skipped = SkipLog()
        self.container, stream = open_video(path)
        stream.thread_type = "AUTO"  # frame threads: decoding keeps up with inference
        self.stream = stream
        self.rotation = 0  # display rotation found on the frames (applied to the pixels)
        self.info = SourceInfo(
            "video",
            str(path),
            path=path,
            fps=stream.average_rate or stream.guessed_rate or DEFAULT_FPS,
            time_base=stream.time_base,
            size=(stream.codec_context.width, stream.codec_context.height),
            frame_count=stream.frames or None,
            has_audio=bool(self.container.streams.audio),
        )

    def __iter__(self) -> Iterator[FrameItem]:
        """Frames upright (the stream's display rotation applied), with their original timestamps."""
        av = _av()
        index, bad_packets = 0, 0

        def on_bad_packet(packet: Any, exc: Exception) -> None:
            nonlocal bad_packets
            bad_packets += 1
            log.debug("undecodable packet at pts %s: %s", packet.pts, exc)

        fmt = "bgr24" if self.bgr else "rgb24"
        try:
            for image, frame in decode_video_frames(self.container, self.stream, fmt, on_bad_packet):
                if frame.rotation and not self.rotation:
                    degrees = round(frame.rotation) % 360
                    self.rotation = degrees - 360 if degrees > 180 else degrees  # in (-180, 180]
                    log.info("%s: display rotation %d applied to the frames", self.path.name, self.rotation)
                yield FrameItem(index, image, f"frame_{index:06d}", frame.pts, frame.time_base)
                index += 1
        except av.FFmpegError as exc:  # demuxing itself failed: the container is cut or damaged
            self.skipped.add(str(self.path), f"reading stopped after {index} frames: {exc}")
        self._report_missing(index, bad_packets)

    def _report_missing(self, decoded: int, bad_packets: int) -> None:
        expected = self.info.frame_count
        if bad_packets:
            self.skipped.add(str(self.path), f"{bad_packets} damaged packet(s) could not be decoded")
        if expected and decoded < expected:
            self.skipped.add(
                str(self.path),
                f"{expected - decoded} of {expected} frames could not be decoded (truncated or corrupt file)",
            )

    def close(self) -> None:
        self.container.close()


class AudioCopier:
    """Remuxes the source's first audio stream into the output, interleaved by time, without re-encoding."""

    def __init__(self, source: Path, output: Any) -> None:
        av = _av()
        self.input = av.open(str(source))
        in_stream = self.input.streams.audio[0]
        self.out_stream = output.add_stream_from_template(in_stream)
        self.output = output
        self._packets = self.input.demux(in_stream)
        self._pending: Any = None
        self.done = False

    def copy_until(self, seconds: float | None) -> None:
        """Mux audio packets whose time is before ``seconds`` (None: all that remain)."""
        while not self.done:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self.done = True
                break
            if packet.dts is None:  # demux's final flush packet carries no data
                continue
            if seconds is not None and float(packet.dts * packet.time_base) > seconds:
                self._pending = packet
                break
            packet.stream = self.out_stream
            self.output.mux(packet)

    def close(self) -> None:
        self.input.close()


def pick_codec(preferred: str = "libx264") -> str:
    av = _av()
    for name in (preferred, "libx264", "mpeg4"):
        if name in av.codecs_available:
            return name
    raise missing_dependency("av (with libx264 or mpeg4)", None, "video encoding")
