"""Regenerate samples/: small hazy images and a short hazy video made with dehazekit's own haze synthesis.

Sources are scikit-image's bundled images, which their docstrings state are free to redistribute:
astronaut (NASA, public domain), rocket (SpaceX, public domain), coffee (Rachel Michetti, CC0),
chelsea (Stefan van der Walt, CC0). Everything is seeded, so a rerun reproduces the same pixels
(up to the JPEG/H.264 encoder versions).

    python tools/make_samples.py            # writes samples/images/*.jpg and samples/video/hazy_rocket.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dehazekit.data.haze import get_preset, synthesize
from dehazekit.data.images import to_uint8, write_image

ROOT = Path(__file__).resolve().parents[1] / "samples"
# (skimage loader, preset, seed, beta) -- beta fixed so each sample has a known, visible haze level.
IMAGES = [
    ("astronaut", "homogeneous", 1, 1.6),
    ("rocket", "realistic", 2, 1.8),
    ("coffee", "homogeneous", 3, 1.4),
    ("chelsea", "realistic", 4, 1.5),
]


def _load(name: str, max_side: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def make_images(out: Path, max_side: int = 320) -> list[Path]:
    paths = []
    for name, preset, seed, beta in IMAGES:
        hazy = synthesize(
            _load(name, max_side), np.random.default_rng(seed), get_preset(preset), beta=beta
        ).hazy
        paths.append(write_image(out / f"hazy_{name}.jpg", hazy, quality=90))
    return paths


def make_video(path: Path, seconds: float = 3.0, fps: int = 15, size: tuple[int, int] = (320, 240)) -> Path:
    """A slow pan across the hazed rocket photo; the haze is made once so it stays put on the scene."""
    import av

    from dehazekit.runtimes.io_utils import atomic_path

    w, h = size
    scene = _load("rocket", 480)
    cfg = get_preset("homogeneous")
    hazy = synthesize(scene, np.random.default_rng(7), cfg, beta=1.7).hazy
    frames = int(seconds * fps)
    max_x, max_y = hazy.shape[1] - w, hazy.shape[0] - h
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "28", "preset": "medium"}
        for i in range(frames):
            x = round(max_x * i / max(frames - 1, 1))
            y = round(max_y * 0.5)
            frame = av.VideoFrame.from_ndarray(to_uint8(hazy[y : y + h, x : x + w]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT)
    args = ap.parse_args()
    for p in make_images(args.out / "images"):
        print(p)
    print(make_video(args.out / "video" / "hazy_rocket.mp4"))


if __name__ == "__main__":
    main()
