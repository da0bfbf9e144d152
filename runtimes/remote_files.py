"""Image inputs on filesystems pyarrow serves (s3://, gs://, hdfs://, abfs://, file://...) for the Ray engine.

Listing happens on the driver, reading in each actor; pixels then go through the same reader as local
files (``media.read_image``), so orientation, bit depth and colour handling cannot differ. Outputs stay
local paths (a folder every node sees).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import InputError, missing_dependency
from dehazekit.runtimes.frames import SourceInfo
from dehazekit.runtimes.media import is_image, read_image
from dehazekit.runtimes.streams import is_stream_url


def is_remote(spec: str) -> bool:
    """A filesystem URI (scheme://...) that is not a live stream URL."""
    return "://" in spec and not is_stream_url(spec)


def _pafs() -> Any:
    try:
        import pyarrow.fs as pafs
    except ImportError as exc:
        raise missing_dependency("pyarrow", "ray", "reading inputs from filesystem URIs") from exc
    return pafs


@dataclass
class RemoteImages:
    """The image files under a URI: ``files`` are paths inside its filesystem, named relative to ``root``."""

    uri: str
    root: str
    files: list[str]
    info: SourceInfo

    def names(self) -> list[str]:
        return [str(PurePosixPath(f).relative_to(self.root)) for f in self.files]


def list_remote_images(uri: str) -> RemoteImages:
    pafs = _pafs()
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        entry = fs.get_file_info(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad or unreachable URIs
        raise InputError.build(
            "cannot open the input URI",
            got=f"{uri}: {exc}",
            fix="check the URI and the credentials pyarrow uses for it",
        ) from exc
    if entry.type == pafs.FileType.NotFound:
        raise InputError.build("input not found", got=uri, fix="check the path")
    if entry.type == pafs.FileType.File:
        files, root = [path], str(PurePosixPath(path).parent)
    else:
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        files, root = sorted(f.path for f in found if f.type == pafs.FileType.File and is_image(f.path)), path
    if not files:
        raise InputError.build("no images under the URI", got=uri, expected="image files (.png, .jpg, ...)")
    return RemoteImages(uri, root, files, SourceInfo("folder", uri, frame_count=len(files)))


class RemoteReader:
    """Reads image files of one filesystem URI; built once per actor (holds the filesystem client)."""

    def __init__(self, uri: str) -> None:
        self.fs, _ = _pafs().FileSystem.from_uri(uri)

    def read(self, path: str, bgr: bool = False) -> np.ndarray:
        try:
            with self.fs.open_input_stream(path) as stream:
                data = stream.read()
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable object is a skipped input
            raise InputError.build(f"cannot read {PurePosixPath(path).name}", got=str(exc)) from exc
        with tempfile.TemporaryDirectory(prefix="dehazekit-remote-") as folder:
            local = Path(folder) / PurePosixPath(path).name  # messages name the file, not a temporary
            local.write_bytes(data)
            return read_image(local, bgr=bgr)
