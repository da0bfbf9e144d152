"""Test media made on the fly: small synthetic videos (optionally with audio) and images."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def moving_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth hazy-looking gradients with a moving bright square, so codecs have real content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / max(width, 1), yy / max(height, 1), 0.5 + 0.0 * xx], axis=-1)
    frames = []
    for i in range(count):
        frame = 0.6 * base + 0.3
        x0 = (i * 3) % max(width - 8, 1)
        frame[4:12, x0 : x0 + 8] = 0.95
        frame += rng.normal(0, 0.01, frame.shape)
        frames.append((np.clip(frame, 0, 1) * 255).astype(np.uint8))
    return frames


def make_video(
    path: Path,
    count: int = 12,
    width: int = 48,
    height: int = 34,
    fps: int = 12,
    audio: bool = False,
    faststart: bool = True,
) -> Path:
    """Encode ``count`` frames with libx264 (mp4, moov first so a truncated copy is still readable)."""
    options = {"movflags": "faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "4"}  # short GOP: a cut file keeps most frames
        audio_stream = out.add_stream("aac", rate=16000) if audio else None
        for i, frame in enumerate(moving_frames(count, width, height)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio_stream is not None:
            _write_tone(out, audio_stream, seconds=count / fps)
    return path


def _write_tone(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float
) -> None:
    rate, chunk = 16000, 1024
    samples = np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate).astype(np.float32)
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def probe(path: Path) -> dict:
    """Frame count (by decoding), size, stream kinds and the rate from first to last timestamp."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [frame.pts for frame in container.decode(stream)]
        kinds = sorted(s.type for s in container.streams)
        time_base = stream.time_base
        size = (stream.codec_context.width, stream.codec_context.height)
    span = float((pts[-1] - pts[0]) * time_base) if len(pts) > 1 else 0.0
    return {
        "frames": len(pts),
        "size": size,
        "kinds": kinds,
        "pts": pts,
        "fps": (len(pts) - 1) / span if span else None,
    }


def write_images(folder: Path, count: int, width: int = 40, height: int = 30) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(moving_frames(count, width, height, seed=count)):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths
