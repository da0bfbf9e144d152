"""Keyframe-aligned video chunks: plan them, decode one, and stitch encoded chunks back in order.

A fleet engine hands each chunk to a different worker. Chunks start on keyframes so a worker decodes its
chunk without the frames before it; frames are assigned to chunks by presentation timestamp, so every
frame lands in exactly one chunk whatever the codec's reordering. Encoded chunks are joined by remuxing
their packets (no second encode) with the source's audio interleaved, keeping every original timestamp.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from dehazekit.runtimes.errors import ConfigError, VideoError
from dehazekit.runtimes.frames import FrameItem, SkipLog
from dehazekit.runtimes.io_utils import atomic_path
from dehazekit.runtimes.video import AudioCopier, _av

log = logging.getLogger(__name__)

# ~10 s of 25 fps video per task: long enough that model loading and encoder start-up are amortised,
# short enough that a lost worker costs little work to redo. Chunks never split a GOP.
CHUNK_FRAMES = 256


@dataclass(frozen=True)
class Chunk:
    """Frames whose pts lie in [start_pts, end_pts) (end None: to the end); ``first_index`` numbers them."""

    index: int
    start_pts: int
    end_pts: int | None
    first_index: int
    frames: int


def _packet_times(path: Path) -> tuple[list[int], list[int], Fraction]:
    """(sorted pts of all video packets, sorted pts of keyframe packets, time base), without decoding."""
    from dehazekit.runtimes.media import open_video

    av = _av()
    container, stream = open_video(path)
    with container:
        pts, keys = [], []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:  # flush packets and damaged timestamps
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError as exc:  # a cut file: plan what could be read, the decoder reports the rest
            log.warning("%s: demuxing stopped after %d packets: %s", path.name, len(pts), exc)
        return sorted(pts), sorted(keys), stream.time_base


def plan_chunks(path: Path, chunk_frames: int = CHUNK_FRAMES) -> list[Chunk]:
    """Split ``path``'s first video stream at keyframes into chunks of at least ``chunk_frames`` frames."""
    if chunk_frames < 1:
        raise ConfigError.build("chunk frames must be >= 1", got=chunk_frames)
    pts, keys, _ = _packet_times(Path(path))
    if not pts:
        raise VideoError.build(f"{Path(path).name} has no video packets", got=0, expected=">= 1 frame")
    starts = [pts[0]]  # the first chunk starts at the first frame even if it is not a keyframe
    for key in keys:
        if (
            key > starts[-1]
            and bisect.bisect_left(pts, key) - bisect.bisect_left(pts, starts[-1]) >= chunk_frames
        ):
            starts.append(key)
    chunks = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        first = bisect.bisect_left(pts, start)
        last = bisect.bisect_left(pts, end) if end is not None else len(pts)
        chunks.append(Chunk(i, start, end, first, last - first))
    return chunks


def decode_chunk(
    path: Path, chunk: Chunk, bgr: bool = False, skipped: SkipLog | None = None
) -> Iterator[FrameItem]:
    """The chunk's frames in presentation order, as FrameItems with their original pts.

    Seeks to the keyframe at the chunk's start (any earlier frames the decoder emits are dropped) and
    stops at the first frame at or past the end: decoders emit frames in presentation order, so every
    frame of the chunk, including reordered B-frames, has come out by then.
    """
    from dehazekit.runtimes.media import decode_video_frames, open_video

    bad = 0

    def on_bad_packet(packet: object, exc: Exception) -> None:
        nonlocal bad
        bad += 1

    container, stream = open_video(path)
    with container:
        stream.thread_type = "AUTO"
        if chunk.index > 0:
            container.seek(chunk.start_pts, stream=stream, backward=True, any_frame=False)
        index = chunk.first_index
        fmt = "bgr24" if bgr else "rgb24"
        # the local source's decoder: frames come out upright (display rotation applied) like there
        for image, frame in decode_video_frames(container, stream, fmt, on_bad_packet):
            if frame.pts is None or frame.pts < chunk.start_pts:
                continue
            if chunk.end_pts is not None and frame.pts >= chunk.end_pts:
                break
            yield FrameItem(index, image, f"frame_{index:06d}", frame.pts, frame.time_base)
            index += 1
    if bad and skipped is not None:
        skipped.add(f"{path}#chunk{chunk.index}", f"{bad} damaged packet(s) could not be decoded")


def join_chunks(
    parts: Sequence[Path], out: Path, audio_from: Path | None = None, time_base: Fraction | None = None
) -> int:
    """Remux the encoded ``parts`` (in order) into ``out`` atomically, copying ``audio_from``'s first audio
    stream interleaved by time; ``time_base``: the output stream's (the source's, so timestamps match the
    local path's exactly). Returns the number of video packets written."""
    av = _av()
    if not parts:
        raise VideoError.build("no encoded chunks to join", got=0, expected=">= 1 chunk")
    inputs = [av.open(str(p)) for p in parts]
    try:
        _check_same_stream(inputs, parts)
        with atomic_path(out) as tmp:
            options = {"movflags": "faststart"} if out.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
            with av.open(str(tmp), mode="w", options=options) as container:
                video = container.add_stream_from_template(inputs[0].streams.video[0])
                if time_base is not None:
                    video.time_base = time_base
                audio = AudioCopier(audio_from, container) if audio_from is not None else None
                try:
                    written = _remux(inputs, container, video, audio)
                finally:
                    if audio is not None:
                        audio.close()
    finally:
        for container in inputs:
            container.close()
    return written


def _remux(inputs: list, container, video, audio: AudioCopier | None) -> int:
    written = 0
    for source in inputs:
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            seconds = float(packet.pts * packet.time_base) if packet.pts is not None else None
            packet.stream = video
            container.mux(packet)
            written += 1
            if audio is not None and seconds is not None:
                audio.copy_until(seconds)
    if audio is not None:
        audio.copy_until(None)
    return written


def _check_same_stream(inputs: list, parts: Sequence[Path]) -> None:
    """Chunks from one encoder configuration share codec, size and parameter sets; anything else would
    make a file that plays garbage after the first join."""
    first = inputs[0].streams.video[0].codec_context
    for container, part in zip(inputs[1:], parts[1:]):
        ctx = container.streams.video[0].codec_context
        same = (ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b"")) == (
            first.name,
            first.width,
            first.height,
            bytes(first.extradata or b""),
        )
        if not same:
            raise VideoError.build(
                "encoded chunks differ in codec, size or parameter sets",
                got=part.name,
                expected=f"{first.name} {first.width}x{first.height} like {parts[0].name}",
                fix="encode all chunks with the same codec and options",
            )
