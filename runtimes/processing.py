"""Pre/post-processing driven by ModelMeta, in numpy.

Frames at the edges: uint8 (H, W, 3) RGB, or BGR when the caller says so (OpenCV). The model side:
(B, 3, H, W) float32 in ``meta.value_range`` (optionally mean/std normalised), padded by reflection to
``meta.pad_multiple`` and at least ``meta.min_size``; outputs are cropped back. Frames are never resized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.meta import ModelMeta


@dataclass(frozen=True)
class Padding:
    """How much was added at the bottom and right (top/left stay put so cropping is a slice)."""

    height: int
    width: int
    pad_h: int
    pad_w: int


def check_frame(frame: object, what: str = "frame") -> np.ndarray:
    """A frame must be uint8 (H, W, 3); greyscale and RGBA are rejected with the fix."""
    if not isinstance(frame, np.ndarray):
        raise InputError.build(
            f"{what} must be a numpy array", got=type(frame).__name__, expected="uint8 array (H, W, 3)"
        )
    if frame.dtype != np.uint8:
        raise InputError.build(
            f"{what} has the wrong dtype",
            got=str(frame.dtype),
            expected="uint8 (H, W, 3)",
            fix="convert with (x * 255).clip(0, 255).astype(np.uint8)",
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError.build(
            f"{what} must have 3 colour channels",
            got=f"shape {frame.shape}",
            expected="(H, W, 3)",
            fix="convert greyscale/RGBA frames to RGB first",
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError.build(f"{what} is empty", got=f"shape {frame.shape}")
    return frame


def padded_size(size: int, meta: ModelMeta) -> int:
    size = max(size, meta.min_size)
    return -(-size // meta.pad_multiple) * meta.pad_multiple


def plan_padding(height: int, width: int, meta: ModelMeta) -> Padding:
    return Padding(height, width, padded_size(height, meta) - height, padded_size(width, meta) - width)


def pad_batch(batch: np.ndarray, pad: Padding) -> np.ndarray:
    """Reflect-pad (B, C, H, W) at bottom/right; edge-pad where a side is one pixel (nothing to reflect)."""
    if pad.pad_h == 0 and pad.pad_w == 0:
        return batch
    mode = "reflect" if min(pad.height, pad.width) > 1 else "edge"
    return np.pad(batch, ((0, 0), (0, 0), (0, pad.pad_h), (0, pad.pad_w)), mode=mode)


def crop_batch(batch: np.ndarray, pad: Padding) -> np.ndarray:
    return batch[:, :, : pad.height, : pad.width]


def _channel_affine(meta: ModelMeta) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, offset) so that model_value = uint8_value * scale + offset."""
    low, high = meta.value_range
    mean = np.asarray(meta.mean if meta.mean is not None else (0.0, 0.0, 0.0), dtype=np.float64)
    std = np.asarray(meta.std if meta.std is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    return (high - low) / 255.0 / std, (low - mean) / std


def _source_channels(meta: ModelMeta, bgr: bool) -> tuple[int, int, int]:
    """Which frame channel feeds model channel 0, 1, 2 (a swap when frame and model orders differ)."""
    return (2, 1, 0) if bgr != (meta.channel_order == "BGR") else (0, 1, 2)


def to_model_batch(frames: Sequence[np.ndarray], meta: ModelMeta, bgr: bool = False) -> np.ndarray:
    """Same-size uint8 (H, W, 3) frames -> (B, 3, H, W) float32 in the model's range (unpadded).

    Written plane by plane into one preallocated array: a 720p frame costs a few ms instead of the
    tens of ms that stack/astype/transpose copies take, which matters on a camera's CPU.
    """
    if not frames:
        raise InputError.build("no frames to process", got=0, expected=">= 1 frame")
    shape = frames[0].shape
    for frame in frames:
        check_frame(frame)
        if frame.shape != shape:
            raise InputError.build(
                "frames in one batch differ in size",
                got=frame.shape,
                expected=shape,
                fix="batch only same-size frames (dehazekit.runtimes.pipeline does this for you)",
            )
    scale, offset = _channel_affine(meta)
    sources = _source_channels(meta, bgr)
    batch = np.empty((len(frames), 3, shape[0], shape[1]), dtype=np.float32)
    for index, frame in enumerate(frames):
        for channel, source in enumerate(sources):
            plane = batch[index, channel]
            np.multiply(frame[:, :, source], np.float32(scale[channel]), out=plane, casting="unsafe")
            if offset[channel]:
                plane += np.float32(offset[channel])
    return batch


def from_model_batch(batch: np.ndarray, meta: ModelMeta, bgr: bool = False) -> list[np.ndarray]:
    """(B, 3, H, W) float model output -> list of uint8 (H, W, 3) frames, rounded and clipped."""
    scale, offset = _channel_affine(meta)
    sources = _source_channels(meta, bgr)
    _, _, height, width = batch.shape
    work = np.empty((height, width), dtype=np.float32)
    frames = []
    for planes in batch:
        frame = np.empty((height, width, 3), dtype=np.uint8)
        for channel, target in enumerate(sources):
            # inverse of to_model_batch: uint8 = (model - offset) / scale
            np.subtract(planes[channel], np.float32(offset[channel]), out=work, casting="unsafe")
            work *= np.float32(1.0 / scale[channel])
            np.clip(work, 0, 255, out=work)
            np.rint(work, out=work)
            frame[:, :, target] = work
        frames.append(frame)
    return frames


def to_layout(batch: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """NCHW -> the model's layout (NHWC models get a transposed copy)."""
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if meta.layout == "NHWC" else batch


def from_layout(batch: np.ndarray, meta: ModelMeta) -> np.ndarray:
    return batch.transpose(0, 3, 1, 2) if meta.layout == "NHWC" else batch
