"""Pre/post-processing driven by ModelMeta, in numpy.

Frames at the edges: uint8 (H, W, 3) RGB, or BGR when the caller says so (OpenCV). The model side:
(B, 3, H, W) float32 in ``meta.value_range`` (optionally mean/std normalised), padded by reflection to
``meta.pad_multiple`` and at least ``meta.min_size``; outputs are cropped back. Frames are never resized.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runtimes.errors import InputError
from runtimes.meta import ModelMeta


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
        raise InputError.build(f"{what} must be a numpy array", got=type(frame).__name__,
                               expected="uint8 array (H, W, 3)")
    if frame.dtype != np.uint8:
        raise InputError.build(f"{what} has the wrong dtype", got=str(frame.dtype), expected="uint8 (H, W, 3)",
                               fix="convert with (x * 255).clip(0, 255).astype(np.uint8)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError.build(f"{what} must have 3 colour channels", got=f"shape {frame.shape}",
                               expected="(H, W, 3)", fix="convert greyscale/RGBA frames to RGB first")
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


def to_model_batch(frames: Sequence[np.ndarray], meta: ModelMeta, bgr: bool = False) -> np.ndarray:
    """Same-size uint8 (H, W, 3) frames -> (B, 3, H, W) float32 in the model's range (unpadded)."""
    if not frames:
        raise InputError.build("no frames to process", got=0, expected=">= 1 frame")
    shape = frames[0].shape
    for frame in frames:
        check_frame(frame)
        if frame.shape != shape:
            raise InputError.build("frames in one batch differ in size", got=frame.shape, expected=shape,
                                   fix="batch only same-size frames (runtimes.pipeline does this for you)")
    batch = np.stack(frames).astype(np.float32)
    if bgr != (meta.channel_order == "BGR"):
        batch = batch[..., ::-1]
    low, high = meta.value_range
    batch = batch * ((high - low) / 255.0) + low
    if meta.mean is not None:
        batch = batch - np.asarray(meta.mean, dtype=np.float32)
    if meta.std is not None:
        batch = batch / np.asarray(meta.std, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


def from_model_batch(batch: np.ndarray, meta: ModelMeta, bgr: bool = False) -> list[np.ndarray]:
    """(B, 3, H, W) float model output -> list of uint8 (H, W, 3) frames, rounded and clipped."""
    out = batch.transpose(0, 2, 3, 1)
    if meta.std is not None:
        out = out * np.asarray(meta.std, dtype=np.float32)
    if meta.mean is not None:
        out = out + np.asarray(meta.mean, dtype=np.float32)
    low, high = meta.value_range
    out = (out - low) * (255.0 / (high - low))
    if bgr != (meta.channel_order == "BGR"):
        out = out[..., ::-1]
    frames = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(f) for f in frames]


def to_layout(batch: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """NCHW -> the model's layout (NHWC models get a transposed copy)."""
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if meta.layout == "NHWC" else batch


def from_layout(batch: np.ndarray, meta: ModelMeta) -> np.ndarray:
    return batch.transpose(0, 3, 1, 2) if meta.layout == "NHWC" else batch
