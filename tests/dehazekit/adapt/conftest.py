"""Generated hazy-looking images (tiny, seeded) shared by the adapt tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_hazy_images(
    folder: Path, count: int, size: tuple[int, int] = (40, 48), seed: int = 0
) -> list[Path]:
    """Smooth random scenes under synthetic haze (I = J t + A (1 - t)), saved as PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        coarse = rng.random((4, 4, 3))
        scene = np.kron(coarse, np.ones((size[0] // 4 + 1, size[1] // 4 + 1, 1)))[: size[0], : size[1]]
        hazy = scene * 0.6 + 0.4 * 0.9 + rng.normal(0, 0.02, scene.shape)
        path = folder / f"hazy_{i:02d}.png"
        Image.fromarray((np.clip(hazy, 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture()
def hazy_dir(tmp_path: Path) -> Path:
    write_hazy_images(tmp_path / "hazy", 6)
    return tmp_path / "hazy"
