"""Unlabeled real hazy data for adaptation: a folder, a list of image paths, or a video file.

``UnpairedHazy`` loads every usable image once (non-images and unreadable files are skipped and
listed), splits them with a seeded permutation into two disjoint halves -- ``S_w`` (lower level,
LoRA weights) and ``S_alpha`` (upper level, gates) -- and hands out infinite seeded samplers of
augmented crops: (B, 3, S, S) float32 in [0, 1] (random square crop, resized to S, random flip and
90-degree rotation).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dehazekit.runtimes.errors import ConfigError, InputError, VideoError
from dehazekit.runtimes.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    decode_video_frames,
    open_video,
    read_image,
)

log = logging.getLogger(__name__)

MAX_CROP_FACTOR = 2  # crops span [S, 2S] source pixels before the resize to S: mild scale jitter
MAX_SHORT_FACTOR = 4  # larger photos are downscaled to a short side of 4S: crops keep scene context


@dataclass
class Item:
    """One usable image: a name for digests/logs and uint8 (H, W, 3) RGB pixels."""

    name: str
    size_bytes: int
    pixels: np.ndarray


@dataclass
class LoadReport:
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    upscaled: list[str] = field(default_factory=list)


def _load_images(paths: Sequence[Path], report: LoadReport) -> list[Item]:
    items = []
    for path in sorted(paths, key=lambda p: str(p)):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.skipped.append({"path": str(path), "reason": "not an image (suffix)"})
            continue
        try:
            pixels = read_image(path)  # upright, any bit depth, sRGB: the same pixels `run` would see
        except InputError as exc:
            reason = f"unreadable: {exc}"[:200]
            report.skipped.append({"path": str(path), "reason": reason})
            continue
        items.append(Item(path.name, path.stat().st_size, pixels))
    return items


def load_video_frames(path: Path, frames: int) -> list[Item]:
    """Up to ``frames`` evenly spaced upright RGB frames of a video (memory bounded), named NAME#INDEX."""
    try:
        import av
    except ImportError as exc:
        from dehazekit.runtimes.errors import missing_dependency

        raise missing_dependency("av", None, "reading video frames") from exc
    try:
        kept = _decode_spread(av, path, frames)
    except Exception as exc:
        raise VideoError.build(
            "could not decode video", got=f"{path}: {exc}", fix="check the file plays"
        ) from exc
    if not kept:
        raise VideoError.build("video has no frames", got=str(path))
    picks = np.unique(np.linspace(0, len(kept) - 1, num=min(frames, len(kept))).round().astype(int))
    size = path.stat().st_size
    return [Item(f"{path.name}#{kept[i][0]:06d}", size, kept[i][1]) for i in picks]


def _decode_spread(av, path: Path, frames: int) -> list[tuple[int, np.ndarray]]:
    """Evenly spaced (index, RGB frame) pairs in one pass with memory bounded by 2 * frames.

    Frame counts in container metadata are often missing or wrong, so we keep every stride-th
    frame and double the stride (dropping every other kept frame) whenever 2 * frames are held.
    """
    kept: list[tuple[int, np.ndarray]] = []
    stride = 1
    container, stream = open_video(path)
    with container:
        # upright frames: a phone portrait clip's display rotation is applied, as in `run`
        for index, (image, _) in enumerate(decode_video_frames(container, stream)):
            if index % stride:
                continue
            kept.append((index, image))
            if len(kept) >= 2 * frames:
                kept, stride = kept[::2], stride * 2
    return kept


def _as_tensor(pixels: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> float (3, H, W) in 0-255. Decoded images are read-only arrays and torch warns
    on a view of one, so the pixels are copied (crops and previews are small)."""
    return torch.tensor(pixels).permute(2, 0, 1).float()


def _digest(items: Sequence[Item]) -> str:
    hasher = hashlib.sha256()
    for name, size in sorted((it.name, it.size_bytes) for it in items):
        hasher.update(f"{name}\0{size}\n".encode())
    return hasher.hexdigest()


class UnpairedHazy:
    """Real hazy images split once into disjoint ``w`` and ``alpha`` halves.

    ``source``: a folder (non-recursive), a list of image paths, or a video file (``video_frames``
    evenly spaced frames). ``size``: side S of the crops handed out. Images whose short side is below
    S are upscaled (bilinear) so a crop fits; they are listed in ``report.upscaled``.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        size: int = 224,
        seed: int = 0,
        video_frames: int = 64,
        exclude: Sequence[Path] = (),
    ) -> None:
        if size < 8:
            raise ConfigError.build("crop size too small", got=size, expected=">= 8")
        self.size, self.seed = int(size), int(seed)
        self.report = LoadReport()
        self.source = self._describe(source)
        self.held_out = [Path(p) for p in exclude]  # held out for the guard: never trained on
        self._exclude = {p.resolve() for p in self.held_out}
        self.items = self._load(source, video_frames)
        if not self.items:
            skipped = len(self.report.skipped)
            raise InputError.build(
                "no usable image",
                got=f"{self.source} ({skipped} skipped)",
                expected="PNG/JPEG/... images or a video file",
                fix="point --images at a folder of hazy photos or a video",
            )
        if len(self.items) < 2:
            raise InputError.build(
                "need at least 2 images (one per split: LoRA weights and gates)",
                got=len(self.items),
                fix="add more images or use a video file",
            )
        self._fit_sizes()
        for entry in self.report.skipped:
            log.warning("skipped %s: %s", entry["path"], entry["reason"])
        order = torch.randperm(len(self.items), generator=torch.Generator().manual_seed(self.seed)).tolist()
        half = len(order) // 2
        self.splits = {"w": sorted(order[:half]), "alpha": sorted(order[half:])}
        self.digest = _digest(self.items)

    @staticmethod
    def _describe(source: str | Path | Sequence[str | Path]) -> str:
        return str(source) if isinstance(source, (str, Path)) else f"{len(source)} paths"

    def _load(self, source: str | Path | Sequence[str | Path], video_frames: int) -> list[Item]:
        if not isinstance(source, (str, Path)):
            paths = [Path(p) for p in source]
            missing = [str(p) for p in paths if not p.is_file()]
            self.report.skipped += [{"path": p, "reason": "not found"} for p in missing]
            return _load_images([p for p in paths if p.is_file() and not self._held(p)], self.report)
        path = Path(source)
        if path.is_dir():
            return _load_images([p for p in path.iterdir() if p.is_file() and not self._held(p)], self.report)
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            return load_video_frames(path, video_frames)
        if path.is_file():
            return _load_images([path], self.report)
        raise InputError.build(
            "--images path not found", got=str(path), expected="a folder, image or video file"
        )

    def _held(self, path: Path) -> bool:
        return bool(self._exclude) and path.resolve() in self._exclude

    def _fit_sizes(self) -> None:
        """Upscale images smaller than a crop (listed); downscale huge ones (memory, crop context)."""
        for item in self.items:
            h, w = item.pixels.shape[:2]
            short = min(h, w)
            if self.size <= short <= MAX_SHORT_FACTOR * self.size:
                continue
            target = self.size if short < self.size else MAX_SHORT_FACTOR * self.size
            new = (max(target, round(h * target / short)), max(target, round(w * target / short)))
            t = _as_tensor(item.pixels)[None]
            t = F.interpolate(t, size=new, mode="bilinear", align_corners=False, antialias=short > target)
            item.pixels = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
            if short < self.size:
                self.report.upscaled.append(item.name)
                log.warning(
                    "upscaled %s from %dx%d to %dx%d: its short side is below --size %d",
                    item.name,
                    w,
                    h,
                    new[1],
                    new[0],
                    self.size,
                )

    def __len__(self) -> int:
        return len(self.items)

    def names(self, split: str) -> list[str]:
        return [self.items[i].name for i in self.splits[split]]

    def sampler(self, split: str, batch_size: int, seed: int | None = None) -> "CropSampler":
        """Infinite crops from split 'w', 'alpha' or 'all' (both; Stage 2 fine-tunes on every image)."""
        streams = {"w": 0, "alpha": 1, "all": 2}  # one seed, a different random stream per split
        if split not in streams:
            raise ConfigError.build("unknown split", got=split, expected=sorted(streams))
        indices = list(range(len(self.items))) if split == "all" else self.splits[split]
        base = self.seed if seed is None else seed
        return CropSampler(self, indices, batch_size, base * 3 + streams[split])

    def fixed_crops(self, count: int) -> Tensor:
        """Deterministic centre crops (count, 3, S, S) for previews and merge checks."""
        crops = []
        for i in range(min(count, len(self.items))):
            pixels = _as_tensor(self.items[i].pixels) / 255.0
            h, w = pixels.shape[1:]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            crop = pixels[:, top : top + side, left : left + side][None]
            crops.append(
                F.interpolate(
                    crop, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
                )
            )
        return torch.cat(crops).clamp(0, 1)


class CropSampler:
    """Infinite seeded iterator of (B, 3, S, S) float32 [0, 1] batches from one split.

    Its state (a torch Generator state) goes into checkpoints so a resumed run draws the same crops.
    """

    def __init__(self, data: UnpairedHazy, indices: Sequence[int], batch_size: int, seed: int) -> None:
        if batch_size < 1:
            raise ConfigError.build("batch size must be >= 1", got=batch_size)
        self.data, self.indices, self.batch_size = data, list(indices), int(batch_size)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __iter__(self) -> Iterator[Tensor]:
        return self

    def __next__(self) -> Tensor:
        return torch.stack([self._one() for _ in range(self.batch_size)])

    def _rand(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def _one(self) -> Tensor:
        item = self.data.items[self.indices[self._rand(len(self.indices))]]
        h, w = item.pixels.shape[:2]
        size = self.data.size
        side = size + self._rand(min(h, w, MAX_CROP_FACTOR * size) - size + 1)
        top, left = self._rand(h - side + 1), self._rand(w - side + 1)
        pixels = item.pixels[top : top + side, left : left + side]
        crop = _as_tensor(pixels) / 255.0
        if side != size:
            crop = F.interpolate(
                crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )[0].clamp(0, 1)
        if self._rand(2):
            crop = crop.flip(-1)
        return torch.rot90(crop, k=self._rand(4), dims=(1, 2)).contiguous()

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
