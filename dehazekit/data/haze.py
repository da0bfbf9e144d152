"""Synthetic haze with the atmospheric scattering model (Koschmieder; McCartney 1976).

    I(x) = J(x) t(x) + A (1 - t(x)),        t(x) = exp(-beta(x) d(x))

J: clean image, (H, W, 3) float in [0, 1]. A: airlight, one RGB triple (grey or slightly tinted).
d: depth in scene units. A real depth map (Make3D laser depth in metres) is divided by
``HazeConfig.depth_scale`` (80 m, Make3D's far clip) so that one beta range serves both sources; without
one, a pseudo-depth is built:

    d = (1 - s) * v + s * r,  v(y) = 1 - y / (H - 1)  (far at the top, toward the horizon), r: a smooth
    random field (Gaussian-filtered noise, normalised to [0, 1]), s = ``depth_structure``;
    then d is mapped to [depth_near, 1].

Non-uniform haze multiplies beta by exp(m * (f - mean f)) with f another smooth field and
m = ``nonuniform``. After composing, an optional gamma (I ** g), Gaussian sensor noise and a JPEG
re-compression imitate a camera. Every draw comes from the ``numpy.random.Generator`` passed in, so a
seed reproduces an image exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from dehazekit.runtimes.errors import ConfigError, InputError

Range = tuple[float, float]


def _check_range(name: str, rng: Range, low: float, high: float) -> Range:
    rng = (float(rng[0]), float(rng[1]))
    if not (low <= rng[0] <= rng[1] <= high):
        raise ConfigError.build(
            f"HazeConfig.{name} invalid", got=rng, expected=f"low <= high within [{low}, {high}]"
        )
    return rng


@dataclass
class HazeConfig:
    """Ranges that each synthesised image draws from uniformly."""

    beta: Range = (0.5, 2.0)  # extinction per unit depth
    airlight: Range = (0.75, 1.0)  # grey level of A
    airlight_tint: float = 0.0  # max per-channel offset of A (0 = grey)
    airlight_blue: Range = (0.0, 0.0)  # blue - red of A: skylight-scattered haze is bluish, dust warm
    airlight_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel factor (dust, blue-grey)
    depth_near: float = 0.15  # nearest pseudo-depth, so t < 1 everywhere
    depth_structure: float = 0.35  # share of the random field in the pseudo-depth
    depth_scale: float = 80.0  # metres that map to depth 1 when a real depth map is used
    nonuniform: float = 0.0  # strength of the smooth beta modulation
    depth_layers: float = 0.0  # probability of a sharp-edged near layer (objects before the sky)
    linear_light: bool = False  # scatter in linear light, then re-encode sRGB (as a camera does)
    gamma: Range = (1.0, 1.0)
    noise_sigma: Range = (0.0, 0.0)  # Gaussian noise std in [0, 1] units
    jpeg_quality: Range | None = None  # e.g. (40, 90); None = no re-compression

    def __post_init__(self) -> None:
        self.beta = _check_range("beta", self.beta, 0.0, 20.0)
        self.airlight = _check_range("airlight", self.airlight, 0.0, 1.0)
        self.airlight_blue = _check_range("airlight_blue", self.airlight_blue, -0.5, 0.5)
        self.gamma = _check_range("gamma", self.gamma, 0.2, 5.0)
        self.noise_sigma = _check_range("noise_sigma", self.noise_sigma, 0.0, 0.5)
        if self.jpeg_quality is not None:
            self.jpeg_quality = _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        for name, low, high in (
            ("airlight_tint", 0, 0.5),
            ("depth_near", 0, 1),
            ("depth_structure", 0, 1),
            ("nonuniform", 0, 3),
            ("depth_layers", 0, 1),
        ):
            value = float(getattr(self, name))
            if not low <= value <= high:
                raise ConfigError.build(
                    f"HazeConfig.{name} out of range", got=value, expected=f"[{low}, {high}]"
                )
        self.airlight_colour = tuple(float(c) for c in self.airlight_colour)  # type: ignore[assignment]
        if len(self.airlight_colour) != 3 or not all(0.0 < c <= 1.5 for c in self.airlight_colour):
            raise ConfigError.build(
                "HazeConfig.airlight_colour invalid",
                got=self.airlight_colour,
                expected="three factors in (0, 1.5]",
            )
        if self.depth_scale <= 0:
            raise ConfigError.build("HazeConfig.depth_scale must be > 0", got=self.depth_scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, HazeConfig] = {
    # The classic synthetic training domain: spatially uniform extinction, grey airlight, clean sensor.
    "homogeneous": HazeConfig(beta=(0.5, 2.0), airlight=(0.75, 1.0)),
    # A stand-in for the real-world gap: patchy haze, tinted airlight, gamma, noise and JPEG.
    "realistic": HazeConfig(
        beta=(0.4, 2.4),
        airlight=(0.6, 0.95),
        airlight_tint=0.06,
        nonuniform=0.6,
        gamma=(0.85, 1.2),
        noise_sigma=(0.0, 0.02),
        jpeg_quality=(45, 92),
    ),
    # Outdoor haze as photographed: bright airlight that is bluish (O-HAZE/NH-HAZE hazy inputs have
    # blue - red of +29/+32 on 0-255 over warm scenes) or slightly warm, light as well as dense haze, and
    # depth with sharp steps where near objects stand before far background (halos come from never
    # seeing a transmission edge). Default model's training preset, with homogeneous and realistic.
    "outdoor": HazeConfig(
        beta=(0.25, 2.2),
        airlight=(0.7, 1.0),
        airlight_tint=0.03,
        airlight_blue=(-0.05, 0.2),
        depth_structure=0.5,
        depth_layers=0.5,
        nonuniform=0.5,
        gamma=(0.9, 1.1),
        noise_sigma=(0.0, 0.015),
        jpeg_quality=(50, 95),
        linear_light=True,
    ),
    # Target domains the default model never saw (benchmarks/adapt_gt.py adapts to them):
    # non-homogeneous, patchy haze (NH-HAZE-like blobs of dense haze)
    "patchy": HazeConfig(beta=(0.8, 2.2), airlight=(0.7, 0.92), nonuniform=1.6, depth_structure=0.5),
    # yellow dust: warm, dim airlight
    "dust": HazeConfig(beta=(0.8, 2.0), airlight=(0.7, 0.88), airlight_colour=(1.0, 0.86, 0.62)),
    # blue-grey haze: cool, dim airlight
    "bluegrey": HazeConfig(beta=(0.8, 2.0), airlight=(0.62, 0.8), airlight_colour=(0.86, 0.93, 1.0)),
    # dense, low-contrast haze
    "dense": HazeConfig(beta=(2.4, 3.6), airlight=(0.72, 0.9)),
    # meant for real metric depth (--depth ../shared/data/depth/make3d): beta 0.0125-0.0375 per metre
    "depth": HazeConfig(beta=(1.0, 3.0), airlight=(0.72, 0.92)),
}


def get_preset(name: str) -> HazeConfig:
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=2)
        raise ConfigError.build(
            "unknown haze preset",
            got=name,
            expected=sorted(PRESETS),
            fix=f"did you mean {close[0]}?" if close else None,
        )
    return PRESETS[name]


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, scale: float = 0.25) -> np.ndarray:
    """Smooth random field in [0, 1]: low-res noise blurred then upsampled (scale = blob size / image
    side)."""
    h, w = shape
    base = 8
    gh, gw = max(2, round(h / max(h, w) * base)), max(2, round(w / max(h, w) * base))
    noise = ndimage.gaussian_filter(rng.standard_normal((gh, gw)), sigma=max(scale * base, 0.5), mode="wrap")
    from dehazekit.data.images import resize_float

    field_ = resize_float(noise, (h, w))
    lo, hi = float(field_.min()), float(field_.max())
    return (field_ - lo) / (hi - lo) if hi > lo else np.full((h, w), 0.5, np.float32)


def pseudo_depth(shape: tuple[int, int], rng: np.random.Generator, cfg: HazeConfig) -> np.ndarray:
    """(H, W) float32 in [depth_near, 1]: vertical ramp (far at the top) blended with a smooth field."""
    h, w = shape
    ramp = np.repeat(np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None], w, axis=1)
    d = (1 - cfg.depth_structure) * ramp + cfg.depth_structure * smooth_field(shape, rng)
    return (cfg.depth_near + (1 - cfg.depth_near) * d).astype(np.float32)


def layered_depth(depth: np.ndarray, rng: np.random.Generator, cfg: HazeConfig) -> np.ndarray:
    """Put a near layer with a sharp outline (a thresholded smooth field) in front of ``depth``."""
    mask = smooth_field(depth.shape, rng, scale=0.2) > rng.uniform(0.45, 0.8)
    near = rng.uniform(cfg.depth_near, 0.5) * (0.9 + 0.2 * smooth_field(depth.shape, rng))
    return np.where(mask, np.minimum(near, depth), depth).astype(np.float32)


def load_make3d_depth(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Make3D ``Position3DGrid`` channel 3 (metres) resized bilinearly to (H, W)."""
    from scipy.io import loadmat

    from dehazekit.data.images import resize_float

    try:
        grid = loadmat(str(path))["Position3DGrid"]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError.build(
            "cannot read Make3D depth",
            got=f"{path}: {exc}",
            expected="a .mat with key Position3DGrid (H, W, 4)",
        ) from exc
    return resize_float(np.asarray(grid[..., 3], dtype=np.float32), size)


@dataclass
class HazeSample:
    hazy: np.ndarray  # (H, W, 3) float32 in [0, 1]
    transmission: np.ndarray  # (H, W) float32
    params: dict[str, Any] = field(default_factory=dict)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def synthesize(
    clear: np.ndarray,
    rng: np.random.Generator,
    cfg: HazeConfig,
    depth_m: np.ndarray | None = None,
    beta: float | None = None,
) -> HazeSample:
    """Add haze to ``clear`` (H, W, 3) float in [0, 1]. ``depth_m``: optional metric depth (H, W).

    ``beta`` overrides the drawn extinction (benchmarks that need a known density use it).
    """
    clear = np.asarray(clear, dtype=np.float32)
    if clear.ndim != 3 or clear.shape[2] != 3:
        raise InputError.build("synthesize needs an RGB image", got=clear.shape, expected="(H, W, 3)")
    h, w = clear.shape[:2]
    if depth_m is not None:
        d = np.clip(np.asarray(depth_m, np.float32) / cfg.depth_scale, 0.0, 1.0)
    else:
        d = pseudo_depth((h, w), rng, cfg)
        if cfg.depth_layers > 0 and rng.random() < cfg.depth_layers:
            d = layered_depth(d, rng, cfg)
    b = _draw(rng, cfg.beta) if beta is None else float(beta)
    beta_map = np.full((h, w), b, np.float32)
    if cfg.nonuniform > 0:
        f = smooth_field((h, w), rng, scale=0.15)
        beta_map *= np.exp(cfg.nonuniform * (f - f.mean()))
    grey = _draw(rng, cfg.airlight)
    tint = rng.uniform(-cfg.airlight_tint, cfg.airlight_tint, 3) if cfg.airlight_tint > 0 else np.zeros(3)
    if cfg.airlight_blue != (0.0, 0.0):
        tint = tint + _draw(rng, cfg.airlight_blue) * np.array([-0.5, 0.0, 0.5])
    air = np.clip(grey * np.asarray(cfg.airlight_colour) + tint, 0.0, 1.0).astype(np.float32)
    t = np.exp(-beta_map * d).astype(np.float32)
    if cfg.linear_light:
        # Light mixes linearly; the camera encodes afterwards, so haze lifts shadows more than sRGB blending.
        lin = srgb_to_linear(clear) * t[..., None] + srgb_to_linear(air)[None, None, :] * (1 - t[..., None])
        hazy = linear_to_srgb(lin)
    else:
        hazy = clear * t[..., None] + air[None, None, :] * (1 - t[..., None])
    gamma = _draw(rng, cfg.gamma)
    hazy = np.clip(hazy, 0, 1) ** gamma
    sigma = _draw(rng, cfg.noise_sigma)
    if sigma > 0:
        hazy = hazy + rng.normal(0.0, sigma, hazy.shape).astype(np.float32)
    hazy = np.clip(hazy, 0.0, 1.0)
    quality = None
    if cfg.jpeg_quality is not None:
        from dehazekit.data.images import jpeg_roundtrip

        quality = round(_draw(rng, cfg.jpeg_quality))
        hazy = jpeg_roundtrip(hazy, quality)
    params = {
        "beta": b,
        "airlight": [float(a) for a in air],
        "gamma": gamma,
        "noise_sigma": sigma,
        "jpeg_quality": quality,
        "mean_t": float(t.mean()),
        "depth": "given" if depth_m is not None else "pseudo",
    }
    return HazeSample(hazy.astype(np.float32), t, params)
