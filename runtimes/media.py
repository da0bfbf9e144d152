"""The one media layer: which files are images or videos, how they are listed, read, decoded and written.

Every command (run, adapt, eval, export --verify, the samples) reads pixels through here, so all of them
agree on suffixes, EXIF orientation, bit depth, colour profile and video rotation:

- images come out as uint8 (H, W, 3) RGB, upright (EXIF orientation applied), 16-bit and 32-bit integer
  data scaled by their full range (not clipped), float data taken as [0, 1], embedded ICC profiles
  converted to sRGB, alpha dropped, palette/CMYK/grey expanded;
- video frames come out upright: the stream's display rotation (phone portrait clips) is applied to the
  pixels, so outputs need no rotation tag;
- folder and glob listings follow each symlinked folder at most once (no endless symlink loops) and skip
  dot files (temporaries of other runs);
- ``refuse_overwriting_inputs`` stops any command from writing over its own input.

Pillow, PyAV and tifffile are imported lazily; this module needs numpy only at import time.
"""

from __future__ import annotations

import glob as globlib
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dehazekit.runtimes.errors import InputError, OutputError, VideoError, missing_dependency
from dehazekit.runtimes.io_utils import atomic_path, atomic_write_bytes, translate_write_errors

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv")
JPEG_QUALITY = 95

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "atomic_path",
    "decode_video_frames",
    "encode_image",
    "glob_images",
    "is_image",
    "is_video",
    "list_images",
    "open_video",
    "read_image",
    "refuse_overwriting_inputs",
    "upright",
    "walk_files",
    "write_image",
]


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise missing_dependency("pillow", None, "reading and writing images") from exc
    return Image


# --- listing --------------------------------------------------------------------------------------
def walk_files(root: str | Path, recursive: bool = True) -> Iterator[Path]:
    """Files under ``root`` (dot files and dot folders skipped). Symlinked folders are followed, but each
    real folder is entered once, so a link loop (``self -> .``) ends instead of running forever."""
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(top)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(top) / name


def list_images(folder: str | Path, what: str = "image folder", recursive: bool = True) -> list[Path]:
    """Sorted image files inside ``folder`` (and its subfolders unless ``recursive=False``).

    Raises InputError when the folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError.build(f"{what} not found", got=str(folder), fix="pass an existing folder of images")
    files = sorted(p for p in walk_files(folder, recursive) if is_image(p) and p.is_file())
    if not files:
        raise InputError.build(f"{what} holds no images", got=str(folder), expected=", ".join(IMAGE_SUFFIXES))
    return files


def glob_root(pattern: str) -> Path:
    """The longest leading directory without wildcards, so output names keep sub-folders."""
    parts = Path(pattern).parts
    first_magic = next((i for i, part in enumerate(parts) if globlib.has_magic(part)), len(parts))
    fixed = parts[:first_magic]
    return Path(*fixed) if fixed else Path(".")


def _component_regex(part: str) -> str:
    """One path component: ``*`` and ``?`` never cross a ``/``; ``[...]`` classes are kept."""
    out, i = [], 0
    while i < len(part):
        char = part[i]
        close = part.find("]", i + 1) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close > 0:
            body = part[i + 1 : close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``**`` spans any number of folders (including none), like ``glob(recursive=True)``."""
    regex = ""
    for part in Path(pattern).parts:
        if part == "**":
            regex += "(?:[^/]+/)*"
        else:
            regex += _component_regex(part) + ("" if part.endswith("/") else "/")
    return re.compile(regex.rstrip("/") + r"\Z", re.DOTALL)


def glob_images(pattern: str) -> list[Path]:
    """Image files matching ``pattern`` (``**`` recursive), listed by a bounded walk from its fixed root
    (Python's glob would follow a symlink loop until the path length limit)."""
    root = glob_root(pattern)
    if not root.is_dir():
        return []
    regex = _glob_regex(os.path.normpath(pattern))
    recursive = "**" in Path(pattern).parts or len(Path(pattern).parts) - len(root.parts) > 1
    return sorted(
        p for p in walk_files(root, recursive) if is_image(p) and regex.match(os.path.normpath(str(p)))
    )


# --- reading --------------------------------------------------------------------------------------
def _tiff_depth(img: Any) -> tuple[int | None, int | None]:
    """(bits per sample, sample format) from a TIFF's tags; (None, None) for other formats."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return None, None
    bits, fmt = tags.get(258), tags.get(339)
    return (bits[0] if isinstance(bits, tuple) else bits), (fmt[0] if isinstance(fmt, tuple) else fmt)


def _scale_to_uint8(data: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Integer data by its type's full range (a 16-bit 65535 is white), float data as [0, 1]."""
    if data.dtype == np.uint8:
        return data
    if np.issubdtype(data.dtype, np.floating):
        data = np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)
    info = np.iinfo(data.dtype)
    top = float(2**bits - 1) if bits and bits < info.bits else float(info.max)
    scaled = np.clip(data.astype(np.float64), 0, top) * (255.0 / top)
    return np.rint(scaled).astype(np.uint8)


def _to_rgb_array(img: Any) -> np.ndarray:
    """uint8 (H, W, 3) from any Pillow mode without clipping high bit depths."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        bits, _ = _tiff_depth(img)
        data = np.asarray(img)
        if mode.startswith("I;16"):
            data, bits = data.astype(np.uint16), 16
        elif mode == "I" and bits is None:  # e.g. a 16-bit PNG opened as "I" by older Pillow
            bits = 16 if data.min() >= 0 and data.max() <= 65535 else 32
        grey = _scale_to_uint8(data, bits)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _to_srgb(img: Any) -> Any:
    """Convert through an embedded ICC profile to sRGB (8-bit modes only; sRGB profiles skip the work)."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L", "LA", "P"):
        return img
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(profile) or "").lower().replace(" ", ""):
            return img
        if img.mode in ("P", "LA", "L", "RGBA"):
            img = img.convert("RGB") if img.mode != "L" else img
        if img.mode == "L":
            return img  # grey profiles: a tone curve only; keep the values
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, profile, srgb, outputMode="RGB")
    except Exception as exc:  # noqa: BLE001 - a broken profile must not make a readable photo unreadable
        log.debug("ICC profile ignored: %s", exc)
        return img


def _open_tiff_fallback(path: Path) -> np.ndarray:
    """Float and 32-bit RGB TIFFs, which Pillow cannot open, through tifffile (when installed)."""
    try:
        import tifffile
    except ImportError as exc:
        raise missing_dependency("tifffile", None, "reading float / 32-bit colour TIFF images") from exc
    data = tifffile.imread(str(path))
    if data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[2] not in (3, 4):
        data = np.moveaxis(data, 0, -1)  # planar (C, H, W) storage
    data = _scale_to_uint8(data)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    return data[..., :3]


def read_image(path: str | Path, *, bgr: bool = False, max_side: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB (BGR when asked), upright, sRGB; ``max_side`` downscales (Lanczos).

    Raises InputError (one line: what, got) for missing, damaged, mislabelled or oversized files.
    """
    path = Path(path)
    image_mod = _pil()
    from PIL import ImageOps

    try:
        with image_mod.open(path) as img:
            img.load()  # full decode now, so a truncated file fails here and not half-way through a run
            img = ImageOps.exif_transpose(img) or img
            img = _to_srgb(img)
            if max_side is not None and max(img.size) > max_side:
                img = _downscale(img, max_side, image_mod)
            array = _to_rgb_array(img)
    except image_mod.UnidentifiedImageError as exc:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise InputError.build(
                f"cannot read image {path.name}",
                got="not a recognised image format",
                expected=", ".join(IMAGE_SUFFIXES),
            ) from exc
        array = _tiff_or_error(path, exc)
    except Exception as exc:  # Pillow raises many types for damaged files and decompression bombs
        raise InputError.build(f"cannot read image {path.name}", got=f"{type(exc).__name__}: {exc}") from exc
    array = np.ascontiguousarray(array)
    return np.ascontiguousarray(array[..., ::-1]) if bgr else array


def _tiff_or_error(path: Path, cause: Exception) -> np.ndarray:
    try:
        return _open_tiff_fallback(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise InputError.build(
            f"cannot read image {path.name}", got=f"{type(exc).__name__}: {exc}"
        ) from cause


def _downscale(img: Any, max_side: int, image_mod: Any) -> Any:
    if img.mode not in ("RGB", "L", "F", "I"):
        img = img.convert("RGB") if not (img.mode.startswith("I;16")) else img.convert("I")
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, image_mod.Resampling.LANCZOS)


# --- writing --------------------------------------------------------------------------------------
def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def encode_image(img: np.ndarray, suffix: str = ".png", quality: int = JPEG_QUALITY) -> bytes:
    """uint8 or float [0, 1] (H, W, 3) RGB -> file bytes in the format the suffix names."""
    image_mod = _pil()
    suffix = suffix.lower()
    fmt = image_mod.registered_extensions().get(suffix)
    if fmt is None:
        raise OutputError.build(
            "cannot write this image format", got=suffix, expected=", ".join(IMAGE_SUFFIXES)
        )
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0} if fmt == "JPEG" else {}
    image = image_mod.fromarray(_to_uint8(img))
    if suffix == ".pgm":
        image = image.convert("L")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def write_image(path: str | Path, img: np.ndarray, *, bgr: bool = False, quality: int = JPEG_QUALITY) -> Path:
    """Write uint8 or float [0, 1] HWC RGB (or BGR) atomically; the format follows the suffix."""
    path = Path(path)
    rgb = np.ascontiguousarray(img[..., ::-1]) if bgr else img
    return atomic_write_bytes(path, encode_image(rgb, path.suffix, quality))


# --- video ----------------------------------------------------------------------------------------
def upright(frame: np.ndarray, rotation: float | None) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, as PyAV's ``VideoFrame.rotation`` reports
    it; a phone portrait clip says -90) to the pixels."""
    turns = round((rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k=turns)) if turns else frame


def open_video(path: str | Path) -> tuple[Any, Any]:
    """(container, first video stream) of a video file, or one VideoError line (unopenable, no video)."""
    try:
        import av
    except ImportError as exc:
        raise missing_dependency("av", None, "video decoding and encoding") from exc
    path = Path(path)
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise VideoError.build(
            f"cannot open video {path.name}",
            got=f"{type(exc).__name__}: {exc}",
            fix="check the file plays (ffprobe FILE)",
        ) from exc
    if not container.streams.video:
        kinds = [s.type for s in container.streams]
        container.close()
        raise VideoError.build(f"{path.name} has no video stream", got=kinds)
    return container, container.streams.video[0]


def decode_video_frames(
    container: Any, stream: Any, fmt: str = "rgb24", on_bad_packet: Any = None
) -> Iterator[tuple[np.ndarray, Any]]:
    """(upright uint8 frame, av.VideoFrame) pairs of ``stream``; undecodable packets are passed to
    ``on_bad_packet(packet, exc)`` and skipped."""
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            if on_bad_packet is None:
                raise
            on_bad_packet(packet, exc)
            continue
        for frame in frames:
            yield upright(frame.to_ndarray(format=fmt), frame.rotation), frame


# --- never write over an input --------------------------------------------------------------------
def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_overwriting_inputs(
    outputs: Iterable[str | Path], inputs: Iterable[str | Path], flag: str = "--out"
) -> None:
    """Raise OutputError before any work if an output path is (or links to) one of the inputs.

    ``outputs``: every file the command will write; ``inputs``: every file it reads. Paths are compared
    resolved (``..``, symlinks) and by inode (hard links), in linear time. Applies whatever ``--overwrite``
    says: an input is never an output.
    """
    by_real: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for item in inputs:
        path = Path(item)
        by_real[os.path.realpath(path)] = path
        inode = _inode(path)
        if inode is not None:
            by_inode[inode] = path
    for out in outputs:
        out = Path(out)
        hit = by_real.get(os.path.realpath(out))
        if hit is None and by_inode:
            inode = _inode(out)
            hit = by_inode.get(inode) if inode is not None else None
        if hit is not None:
            raise OutputError.build(
                "the output would overwrite an input",
                got=f"output {out} = input {hit}",
                fix=f"choose another {flag} (inputs are never overwritten)",
            )


def writable_check(path: str | Path) -> None:
    """Fail early (one line naming the folder) when the output folder cannot be created or written."""
    import tempfile

    folder = Path(path)
    with translate_write_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
