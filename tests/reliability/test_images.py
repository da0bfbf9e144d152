"""Every kind of image file a camera team meets, through `dehazekit run` with an identity model: the output
must hold exactly the pixels a correct reader gives (bit depth scaled, EXIF orientation applied, alpha
dropped), the input must stay byte-identical, and unreadable files give one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dehazekit.runtimes.media import read_image
from tests.reliability.conftest import assert_user_error, digest_tree, files_in, invoke
from tests.reliability.images import broken_files, cases, float_rgb_tiff

CASES = cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_reads_every_image_kind_exactly(tmp_path, identity_onnx, name):
    writer, expected, suffix = CASES[name]
    src = tmp_path / f"in{suffix}"
    writer(src)
    before = digest_tree(src)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    if expected is None:  # lossy conversions (palette, CMYK): right size, not blank
        assert out.shape[:2] == (24, 32) and out.std() > 10
    else:
        np.testing.assert_array_equal(out, expected)
    assert digest_tree(src) == before
    assert files_in(tmp_path) == [src.name, "out.png"]


def test_float_rgb_tiff_reads_through_tifffile(tmp_path):
    pytest.importorskip("tifffile")
    expected = float_rgb_tiff(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), expected)


@pytest.mark.parametrize("name", ["grey16_png_I;16", "exif_rotate_cw", "int32_tiff"])
def test_adapt_and_eval_read_the_same_pixels_as_run(tmp_path, name):
    from dehazekit.adapt.data import LoadReport, _load_images
    from dehazekit.data.images import read_rgb_uint8

    writer, expected, suffix = CASES[name]
    src = tmp_path / f"in{suffix}"
    writer(src)
    report = LoadReport()
    (item,) = _load_images([src], report)
    np.testing.assert_array_equal(item.pixels, expected)  # adapt
    np.testing.assert_array_equal(read_rgb_uint8(src), expected)  # eval, synth, pretrain


@pytest.mark.parametrize("name", sorted(broken_files()))
def test_unreadable_image_is_one_clear_line_and_no_output(tmp_path, identity_onnx, name):
    writer, suffix = broken_files()[name]
    src = tmp_path / f"bad{suffix}"
    writer(src)
    before = digest_tree(src)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / "out.png")
    assert_user_error(result, 2, "no frames could be read", "cannot read image")
    assert digest_tree(src) == before
    assert files_in(tmp_path) == [src.name]


def test_folder_with_broken_files_keeps_going_and_lists_them(tmp_path, identity_onnx):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "good.png")
    for name, (writer, suffix) in broken_files().items():
        writer(folder / f"{name}{suffix}")
    before = digest_tree(folder)
    result = invoke("run", folder, "--model", identity_onnx, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped ") >= len(broken_files())  # each one listed with its reason
    assert "DecompressionBombError" in result.output
    assert files_in(tmp_path / "out") == ["good.png"]
    assert digest_tree(folder) == before
