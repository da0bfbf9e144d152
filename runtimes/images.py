"""Image sources and sinks: one file, a folder, a glob. Reading, listing and writing live in media."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dehazekit.runtimes.errors import InputError
from dehazekit.runtimes.frames import FrameItem, SkipLog, SourceInfo
from dehazekit.runtimes.media import (
    IMAGE_SUFFIXES,
    glob_images,
    glob_root,
    is_image,
    read_image,
    walk_files,
    write_image,
)

log = logging.getLogger(__name__)


class ImageFilesSource:
    """A list of image files; unreadable ones are skipped and listed in ``skipped``."""

    def __init__(self, files: list[Path], root: Path | None, info: SourceInfo, bgr: bool = False) -> None:
        self.files, self.root, self.info, self.bgr = files, root, info, bgr
        self.skipped = SkipLog()

    def exclude_under(self, folder: Path) -> int:
        """Drop inputs inside ``folder``: an output folder inside the input tree holds earlier outputs,
        which must not be dehazed again (``run DIR --out DIR/sub`` twice). Returns how many were dropped."""
        real = Path(folder).resolve()
        kept = [p for p in self.files if not p.resolve().is_relative_to(real)]
        dropped = len(self.files) - len(kept)
        self.files = kept
        self.info.frame_count = len(kept)
        if not kept:
            raise InputError.build(
                "no input images outside the output folder",
                got=str(folder),
                fix="choose an --out folder outside the input folder",
            )
        return dropped

    def names(self) -> list[str]:
        return [self._name(p) for p in self.files]

    def _name(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if self.root else path.name

    def __iter__(self) -> Iterator[FrameItem]:
        index = 0
        for path in self.files:
            try:
                image = read_image(path, bgr=self.bgr)
            except InputError as exc:
                log.warning("skipping %s: %s", path, exc)
                self.skipped.add(str(path), str(exc))
                continue
            yield FrameItem(index, image, self._name(path))
            index += 1

    def close(self) -> None:
        pass


def image_source(path: Path, bgr: bool = False) -> ImageFilesSource:
    return ImageFilesSource([path], None, SourceInfo("image", str(path), path=path, frame_count=1), bgr)


def folder_source(path: Path, bgr: bool = False) -> ImageFilesSource:
    files = sorted(p for p in walk_files(path) if is_image(p) and p.is_file())
    if not files:
        raise InputError.build(
            "folder holds no images", got=str(path), expected=f"files ending in {IMAGE_SUFFIXES}"
        )
    return ImageFilesSource(
        files, path, SourceInfo("folder", str(path), path=path, frame_count=len(files)), bgr
    )


def glob_source(pattern: str, bgr: bool = False) -> ImageFilesSource:
    files = glob_images(pattern)
    if not files:
        raise InputError.build(
            "glob matched no images", got=pattern, expected=f"files ending in {IMAGE_SUFFIXES}"
        )
    return ImageFilesSource(
        files, glob_root(pattern), SourceInfo("glob", pattern, frame_count=len(files)), bgr
    )


class ImageFileSink:
    """One output image (for a single-image source)."""

    def __init__(self, path: Path, bgr: bool = False) -> None:
        self.path, self.bgr = path, bgr
        self.written = 0

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        if self.written:
            raise InputError.build(
                "an image file sink takes one frame",
                got=self.written + 1,
                fix="write to a folder (--out DIR) or a video (--out x.mp4)",
            )
        write_image(self.path, frame, bgr=self.bgr)
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

    def path_for(self, item_name: str) -> Path:
        name = Path(item_name)
        if self.suffix or not is_image(name):
            name = name.with_suffix(self.suffix or ".png")
        return self.folder / name

    def write(self, item: FrameItem, frame: np.ndarray) -> None:
        write_image(self.path_for(item.name), frame, bgr=self.bgr)
        self.written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
