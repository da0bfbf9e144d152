"""Paired synthetic-haze data from a folder of clean images.

Training pairs are made on the fly: a random crop of a cached clean image, a random flip, then haze
from one of the chosen presets (``dehazekit.data.haze``). Evaluation sets are fixed by a seed and can
be written to disk (``hazy/`` + ``clear/`` + ``params.json``) so runs are comparable.

Tensors are (B, 3, H, W) float32 in [0, 1].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dehazekit.data.haze import HazeConfig, get_preset, load_make3d_depth, synthesize
from dehazekit.data.images import list_images, read_rgb_uint8, write_image
from dehazekit.runtimes.errors import ConfigError, InputError
from dehazekit.runtimes.io_utils import atomic_write_text


def parse_presets(spec: str | list[str]) -> list[str]:
    """'homogeneous+realistic' or 'a,b' or a list -> validated preset names."""
    names = spec if isinstance(spec, list) else [s for s in spec.replace(",", "+").split("+") if s.strip()]
    names = [n.strip() for n in names]
    if not names:
        raise ConfigError.build("no haze preset given", expected="e.g. homogeneous or homogeneous+realistic")
    for name in names:
        get_preset(name)
    return names


def split_holdout(files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic train/held-out split by a hash of the file name (stable when files are added)."""
    if not 0 <= fraction < 1:
        raise ConfigError.build("held-out fraction out of range", got=fraction, expected="[0, 1)")
    if fraction == 0 or len(files) < 2:
        return list(files), list(files)
    score = {p: int(hashlib.sha1(p.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for p in files}
    held = [p for p in files if score[p] < fraction] or [min(files, key=score.get)]
    train = [p for p in files if p not in held] or list(files)
    return train, held


def match_depth(image: Path, depth_dir: Path | None) -> Path | None:
    """Make3D naming: img-<key>.jpg <-> depth_sph_corr-<key>.mat (any '<prefix>-<key>' pair works)."""
    if depth_dir is None:
        return None
    key = image.stem.split("-", 1)[-1]
    hits = [p for p in Path(depth_dir).glob("*.mat") if p.stem.endswith(key)]
    return hits[0] if hits else None


@dataclass
class _Cached:
    image: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray | None  # (H, W) metres, or None


class PairedHaze:
    """On-the-fly (hazy, clear) crops from clean images; images are cached downscaled to ``max_side``."""

    def __init__(
        self,
        files: list[Path],
        presets: list[str],
        crop: int,
        max_side: int = 512,
        depth_dir: Path | None = None,
        rotate: bool = False,
    ) -> None:
        if crop < 8:
            raise ConfigError.build("crop too small", got=crop, expected=">= 8")
        self.presets = parse_presets(presets)
        self.configs: list[HazeConfig] = [get_preset(p) for p in self.presets]
        self.crop = int(crop)
        # Quarter-turn the finished pair (as gUNet's authors do): without it, pseudo-depth that always
        # grows upward teaches a vertical prior that draws streaks up flat skies from tall edges.
        self.rotate = bool(rotate)
        self.items: list[_Cached] = []
        for path in files:
            img = read_rgb_uint8(path, max_side=max(max_side, crop))
            if min(img.shape[:2]) < crop:
                continue
            dpath = match_depth(path, depth_dir)
            depth = load_make3d_depth(dpath, img.shape[:2]) if dpath else None
            self.items.append(_Cached(img, depth))
        if not self.items:
            raise InputError.build(
                "no clean image is large enough for the crop",
                got=f"{len(files)} files",
                expected=f"short side >= {crop}",
                fix="lower --crop",
            )

    def sample(
        self, rng: np.random.Generator, beta: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """One random pair: hazy, clear (crop, crop, 3) float32 and the haze parameters."""
        item = self.items[int(rng.integers(len(self.items)))]
        h, w = item.image.shape[:2]
        y, x = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        sl = (slice(y, y + self.crop), slice(x, x + self.crop))
        clear = item.image[sl].astype(np.float32) / 255.0
        depth = None if item.depth is None else item.depth[sl]
        if rng.random() < 0.5:  # horizontal flip only: haze is thicker toward the top of a scene
            clear = clear[:, ::-1]
            depth = None if depth is None else depth[:, ::-1]
        k = int(rng.integers(len(self.configs)))
        out = synthesize(np.ascontiguousarray(clear), rng, self.configs[k], depth_m=depth, beta=beta)
        out.params["preset"] = self.presets[k]
        out.params["density"] = 1.0 - out.params["mean_t"]
        hazy = out.hazy
        if self.rotate:
            turns = int(rng.integers(4))
            hazy, clear = np.rot90(hazy, turns), np.rot90(clear, turns)
            out.params["rot90"] = turns
        return np.ascontiguousarray(hazy), clear, out.params

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        pairs = [self.sample(rng) for _ in range(size)]
        hazy = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        clear = (
            torch.from_numpy(np.stack([np.ascontiguousarray(p[1]) for p in pairs]))
            .permute(0, 3, 1, 2)
            .contiguous()
        )
        return hazy, clear, [p[2] for p in pairs]


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y : y + s, x : x + s]


def fixed_pairs(
    files: list[Path], preset: str, count: int, seed: int, size: int | None, depth_dir: Path | None = None
) -> list[tuple[str, np.ndarray, np.ndarray, dict]]:
    """A reproducible evaluation set: (name, hazy, clear, params) with images cycling through ``files``.

    ``size``: downscale to this max side, then centre-crop a square of that side (None = full image).
    """
    if count < 1:
        raise ConfigError.build("count must be >= 1", got=count)
    cfg = get_preset(preset)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        path = files[i % len(files)]
        img = read_rgb_uint8(path, max_side=size * 2 if size else None)
        dpath = match_depth(path, depth_dir)
        depth = load_make3d_depth(dpath, img.shape[:2]) if dpath else None
        if size:
            img = center_crop(img, size)
            depth = None if depth is None else center_crop(depth, size)
        clear = img.astype(np.float32) / 255.0
        sample = synthesize(clear, rng, cfg, depth_m=depth)
        out.append((f"{i:04d}_{path.stem}", sample.hazy, clear, {**sample.params, "source": path.name}))
    return out


def write_eval_set(
    clear_dir: str | Path,
    out_dir: str | Path,
    preset: str,
    count: int,
    seed: int = 0,
    size: int | None = 256,
    depth_dir: str | Path | None = None,
) -> Path:
    """Write ``out/hazy/*.png``, ``out/clear/*.png`` and ``out/params.json``; returns ``out``."""
    files = list_images(clear_dir, "clear image folder")
    out = Path(out_dir)
    pairs = fixed_pairs(files, preset, count, seed, size, Path(depth_dir) if depth_dir else None)
    record = {
        "preset": preset,
        "seed": seed,
        "size": size,
        "config": get_preset(preset).to_dict(),
        "images": {},
    }
    for name, hazy, clear, params in pairs:
        write_image(out / "hazy" / f"{name}.png", hazy)
        write_image(out / "clear" / f"{name}.png", clear)
        record["images"][name] = params
    atomic_write_text(out / "params.json", json.dumps(record, indent=2) + "\n")
    return out
