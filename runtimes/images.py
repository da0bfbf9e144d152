"""Image sources and sinks: one file, a folder, a glob (Pillow, imported lazily)."""
from __future__ import annotations

import glob as globlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dehazekit.runtimes.errors import InputError, missing_dependency
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.io_utils import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise missing_dependency("pillow", None, "reading and writing images") from exc
    return Image


def read_image(path: Path, bgr: bool = False) -> np.ndarray:
    """uint8 (H, W, 3); greyscale, palette and RGBA images are converted to RGB (alpha dropped)."""
    image_mod = _pil()
    try:
        with image_mod.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except Exception as exc:  # Pillow raises many types for damaged files
        raise InputError.build(f"cannot read image {path.name}", got=f"{type(exc).__name__}: {exc}") from exc
    return np.ascontiguousarray(array[..., ::-1]) if bgr else array


def write_image(path: Path, frame: np.ndarray, bgr: bool = False) -> Path:
    """Write atomically; JPEG at quality 95, other formats lossless."""
    image_mod = _pil()
    rgb = np.ascontiguousarray(frame[..., ::-1]) if bgr else frame
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    with atomic_path(path) as tmp:
        image_mod.fromarray(rgb).save(tmp, format=image_mod.registered_extensions()[path.suffix.lower()],
                                      **options)
    return path


class ImageFilesSource:
    """A list of image files; unreadable ones are skipped and listed in ``skipped``."""

    def __init__(self, files: list[Path], root: Path | None, info: SourceInfo, bgr: bool = False) -> None:
        self.files, self.root, self.info, self.bgr = files, root, info, bgr
        self.skipped = SkipLog()

    def _name(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if self.root else path.name

    def __iter__(self) -> Iterator[FrameItem]:
        index = 0
        for path in self.files:
            try:
                image = read_image(path, self.bgr)
            except InputError as exc:
                log.warning("skipping %s: %s", path, exc)
                self.skipped.add(str(path), str(exc))
                continue
            yield FrameItem(index, image, self._name(path))
            index += 1

    def close(self) -> None:
        pass


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_source(path: Path, bgr: bool = False) -> ImageFilesSource:
    return ImageFilesSource([path], None, SourceInfo("image", str(path), path=path, frame_count=1), bgr)


def folder_source(path: Path, bgr: bool = False) -> ImageFilesSource:
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p))
    if not files:
        raise InputError.build("folder holds no images", got=str(path), expected=f"files ending in {IMAGE_SUFFIXES}")
    return ImageFilesSource(files, path, SourceInfo("folder", str(path), path=path, frame_count=len(files)), bgr)


def glob_source(pattern: str, bgr: bool = False) -> ImageFilesSource:
    files = sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if is_image(Path(p)))
    if not files:
        raise InputError.build("glob matched no images", got=pattern, expected=f"files ending in {IMAGE_SUFFIXES}")
    return ImageFilesSource(files, _glob_root(pattern), SourceInfo("glob", pattern, frame_count=len(files)), bgr)


def _glob_root(pattern: str) -> Path:
    """The longest leading directory without wildcards, so output names keep sub-folders."""
    parts = Path(pattern).parts
    first_magic = next((i for i, part in enumerate(parts) if globlib.has_magic(part)), len(parts))
    fixed = parts[:first_magic]
    return Path(*fixed) if fixed else Path(".")


class ImageFileSink:
    """One output image (for a single-image source)."""

    def __init__(self, path: Path, bgr: bool = False) -> None:
        self.path, self.bgr = path, bgr
        self.written = 0

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        if self.written:
            raise InputError.build("an image file sink takes one frame", got=self.written + 1,
                                   fix="write to a folder (--out DIR) or a video (--out x.mp4)")
        write_image(self.path, frame, self.bgr)
        self.written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class FolderSink:
    """Each frame as ``<out>/<item.name>`` (written atomically, so no file is ever half-written)."""

    def __init__(self, folder: Path, bgr: bool = False, suffix: str | None = None) -> None:
        self.folder, self.bgr, self.suffix = folder, bgr, suffix
        self.written = 0

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        name = Path(item.name)
        if self.suffix or not is_image(name):
            name = name.with_suffix(self.suffix or ".png")
        write_image(self.folder / name, frame, self.bgr)
        self.written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
