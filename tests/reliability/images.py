"""Awkward image files made on the fly, each with the pixels a correct reader must produce."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

GRAD16 = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)  # 0 .. 65195


def _grey3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=2)


def png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_bomb(path: Path, side: int = 40000) -> None:
    """A PNG whose header claims side x side pixels (1.6 gigapixels) with no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _save(image: Image.Image, path: Path, **kwargs) -> None:
    image.save(path, **kwargs)


def _exif_oriented(path: Path, orientation: int, base: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(base).save(path, exif=exif.tobytes(), format="PNG")


def _oriented_expected(base: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF: 3 = stored upside down, 6 = display rotated 90 degrees clockwise, 8 = 90 counter-clockwise
    return {3: np.rot90(base, 2), 6: np.rot90(base, -1), 8: np.rot90(base, 1)}[orientation]


# name -> (writer(path), expected uint8 (H, W, 3) or None when only "reads, right size" is checked, suffix)
Case = tuple[Callable[[Path], None], "np.ndarray | None", str]


def cases() -> dict[str, Case]:
    rng = np.random.default_rng(3)
    rgb8 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16)
    int32 = (GRAD16.astype(np.int64) * 65537).astype(np.uint32).astype(np.int64) // 2  # <= 2^31 - 1
    floats = GRAD16.astype(np.float32) / 65535.0
    grey8 = rgb8[..., 0]
    oriented = rng.integers(0, 256, (20, 36, 3), dtype=np.uint8)
    exp16 = np.rint(GRAD16 / 257.0).astype(np.uint8)
    return {
        "rgb8_png": (lambda p: Image.fromarray(rgb8).save(p), rgb8, ".png"),
        "grey16_png_I;16": (lambda p: Image.fromarray(GRAD16).save(p), _grey3(exp16), ".png"),
        "grey16_tiff": (lambda p: Image.fromarray(GRAD16).save(p), _grey3(exp16), ".tif"),
        "rgb16_png": (lambda p: png16_rgb(p, rgb16), (rgb16 >> 8).astype(np.uint8), ".png"),
        "int32_tiff": (
            lambda p: Image.fromarray(int32.astype(np.int32)).save(p),
            _grey3(np.rint(int32 / (2**31 - 1) * 255).astype(np.uint8)),
            ".tif",
        ),
        "float_grey_tiff": (
            lambda p: Image.fromarray(floats, mode="F").save(p),
            _grey3(np.rint(floats * 255).astype(np.uint8)),
            ".tif",
        ),
        "grey8_png": (lambda p: Image.fromarray(grey8).save(p), _grey3(grey8), ".png"),
        "grey_alpha_png": (
            lambda p: Image.fromarray(np.stack([grey8, grey8], -1), mode="LA").save(p),
            _grey3(grey8),
            ".png",
        ),
        "rgba_png": (
            lambda p: Image.fromarray(np.dstack([rgb8, np.full((24, 32), 7, np.uint8)])).save(p),
            rgb8,
            ".png",
        ),
        "palette_png": (lambda p: Image.fromarray(rgb8).quantize(16).save(p), None, ".png"),
        "bilevel_png": (
            lambda p: Image.fromarray(grey8 > 127).save(p),
            _grey3(np.where(grey8 > 127, 255, 0).astype(np.uint8)),
            ".png",
        ),
        "cmyk_jpeg": (lambda p: Image.fromarray(rgb8).convert("CMYK").save(p, quality=95), None, ".jpg"),
        "one_pixel_png": (lambda p: Image.fromarray(rgb8[:1, :1]).save(p), rgb8[:1, :1], ".png"),
        "ppm": (lambda p: Image.fromarray(rgb8).save(p), rgb8, ".ppm"),
        "pgm": (lambda p: Image.fromarray(grey8).save(p), _grey3(grey8), ".pgm"),
        "bmp": (lambda p: Image.fromarray(rgb8).save(p), rgb8, ".bmp"),
        "webp_lossless": (lambda p: Image.fromarray(rgb8).save(p, lossless=True), rgb8, ".webp"),
        "png_named_jpg": (lambda p: Image.fromarray(rgb8).save(p, format="PNG"), rgb8, ".jpg"),
        "exif_rotate_180": (
            lambda p: _exif_oriented(p, 3, oriented),
            _oriented_expected(oriented, 3),
            ".png",
        ),
        "exif_rotate_cw": (lambda p: _exif_oriented(p, 6, oriented), _oriented_expected(oriented, 6), ".png"),
        "exif_rotate_ccw": (
            lambda p: _exif_oriented(p, 8, oriented),
            _oriented_expected(oriented, 8),
            ".png",
        ),
        "srgb_icc_png": (lambda p: _with_icc(p, rgb8, srgb=True), rgb8, ".png"),
        "broken_icc_png": (lambda p: _with_icc(p, rgb8, srgb=False), rgb8, ".png"),
    }


def _with_icc(path: Path, rgb8: np.ndarray, srgb: bool) -> None:
    from PIL import ImageCms

    if srgb:
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    else:
        icc = b"not an icc profile at all"
    Image.fromarray(rgb8).save(path, icc_profile=icc)


def float_rgb_tiff(path: Path) -> np.ndarray:
    """A float32 RGB TIFF (Pillow cannot open these; tifffile can). Returns the expected pixels."""
    import tifffile

    data = np.random.default_rng(5).random((20, 28, 3), dtype=np.float32)
    tifffile.imwrite(str(path), data)
    return np.rint(data * 255).astype(np.uint8)


def broken_files() -> dict[str, tuple[Callable[[Path], None], str]]:
    """name -> (writer, suffix) for files no reader can decode: each must give one clear line."""

    def truncated_jpeg(path: Path) -> None:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            buf, format="JPEG", quality=90
        )
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    return {
        "zero_byte_jpg": (lambda p: p.write_bytes(b""), ".jpg"),
        "text_named_png": (lambda p: p.write_text("hello, I am not an image\n"), ".png"),
        "truncated_jpeg": (truncated_jpeg, ".jpg"),
        "png_header_only": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"), ".png"),
        "decompression_bomb": (png_bomb, ".png"),
    }
