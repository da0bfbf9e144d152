"""Outputs never replace inputs, never re-process earlier outputs, and listings end (symlink loops)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tests.reliability.conftest import assert_user_error, digest_tree, files_in, invoke, rgb
from tests.runtimes.media import make_video

REFUSED = "the output would overwrite an input"


def _photos(folder, count=2):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rgb(16, 20, seed=i)).save(folder / f"p{i}.jpg", quality=95)
    return folder


@pytest.mark.parametrize("spelling", ["same", "dot-dot", "absolute"])
def test_image_onto_itself_is_refused(tmp_path, identity_onnx, spelling, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "d", 1)
    out = {"same": "d/p0.jpg", "dot-dot": "d/../d/p0.jpg", "absolute": str(tmp_path / "d" / "p0.jpg")}[
        spelling
    ]
    before = digest_tree(tmp_path / "d")
    result = invoke("run", "d/p0.jpg", "--model", identity_onnx, "--out", out)
    assert_user_error(result, 2, REFUSED, "choose another --out")
    assert digest_tree(tmp_path / "d") == before and files_in(tmp_path / "d") == ["p0.jpg"]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_output_that_links_to_the_input_is_refused(tmp_path, identity_onnx, link):
    _photos(tmp_path / "d", 1)
    src, out = tmp_path / "d" / "p0.jpg", tmp_path / "alias.jpg"
    (os.symlink if link == "symlink" else os.link)(src, out)
    before = digest_tree(src)
    result = invoke("run", src, "--model", identity_onnx, "--out", out)
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(src) == before


def test_image_into_its_own_folder_is_refused(tmp_path, identity_onnx):
    _photos(tmp_path / "d", 1)
    before = digest_tree(tmp_path / "d")
    result = invoke("run", tmp_path / "d" / "p0.jpg", "--model", identity_onnx, "--out", tmp_path / "d")
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(tmp_path / "d") == before


@pytest.mark.parametrize("out", ["d", "d/", "d/."])
def test_folder_onto_itself_is_refused(tmp_path, identity_onnx, out, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "d", 3)
    before = digest_tree(tmp_path / "d")
    result = invoke("run", "d", "--model", identity_onnx, "--out", out)
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(tmp_path / "d") == before and files_in(tmp_path / "d") == [
        "p0.jpg",
        "p1.jpg",
        "p2.jpg",
    ]


def test_glob_onto_its_own_folder_is_refused(tmp_path, identity_onnx):
    _photos(tmp_path / "d", 2)
    before = digest_tree(tmp_path / "d")
    result = invoke("run", str(tmp_path / "d" / "*.jpg"), "--model", identity_onnx, "--out", tmp_path / "d")
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(tmp_path / "d") == before


def test_video_onto_itself_is_refused(tmp_path, identity_onnx):
    clip = make_video(tmp_path / "clip.mp4", count=4)
    before = digest_tree(clip)
    result = invoke("run", clip, "--model", identity_onnx, "--out", clip)
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(clip) == before and files_in(tmp_path) == ["clip.mp4"]


def test_output_inside_the_input_folder_is_not_reprocessed(tmp_path, identity_onnx):
    _photos(tmp_path / "d", 2)
    before = digest_tree(tmp_path / "d")
    for attempt in range(2):
        result = invoke("run", tmp_path / "d", "--model", identity_onnx, "--out", tmp_path / "d" / "sub")
        assert result.exit_code == 0, result.output
        assert "frames     2" in result.output
    assert "excluded   2 earlier outputs" in result.output
    assert files_in(tmp_path / "d") == ["p0.jpg", "p1.jpg", "sub", "sub/p0.jpg", "sub/p1.jpg"]
    assert {k: v for k, v in digest_tree(tmp_path / "d").items() if "/sub/" not in k} == before


@pytest.mark.parametrize("how", ["folder", "glob"])
def test_symlink_loop_is_listed_once_and_ends(tmp_path, identity_onnx, how):
    root = _photos(tmp_path / "d", 2)
    (root / "inner").mkdir()
    Image.fromarray(rgb(8, 8)).save(root / "inner" / "q.png")
    os.symlink(".", root / "self")  # self -> .  (a loop)
    os.symlink("..", root / "inner" / "up")  # inner/up -> d  (another loop)
    source = root if how == "folder" else str(root / "**" / "*.*")
    result = invoke("run", source, "--model", identity_onnx, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == ["inner", "inner/q.png", "p0.jpg", "p1.jpg"]


def test_export_onto_its_source_weights_is_refused(tmp_path):
    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    folder = tmp_path / "m"
    save_model(create_backbone("tiny-gunet").eval(), folder)
    before = digest_tree(folder)
    result = invoke("export", folder, "--onnx", folder / "model.safetensors")
    assert_user_error(result, 2, REFUSED, "--onnx")
    assert digest_tree(folder) == before and files_in(folder) == ["model.json", "model.safetensors"]


def test_adapt_out_onto_its_weights_is_refused(tmp_path):
    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    folder = tmp_path / "m"
    save_model(create_backbone("tiny-gunet").eval(), folder)
    _photos(tmp_path / "hazy", 2)
    before = digest_tree(tmp_path)
    result = invoke(
        "adapt",
        "--images",
        tmp_path / "hazy",
        "--backbone",
        "tiny-gunet",
        "--weights",
        folder,
        "--objective",
        "dcp",
        "--out",
        folder,
    )
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(tmp_path) == before


def test_synth_into_the_clear_folder_is_refused(tmp_path):
    _photos(tmp_path / "set" / "clear", 2)
    before = digest_tree(tmp_path)
    result = invoke("synth", "--clear", tmp_path / "set" / "clear", "--out", tmp_path / "set", "--count", 2)
    assert_user_error(result, 2, "the output folder holds an input")
    assert digest_tree(tmp_path) == before


def test_eval_report_onto_an_input_is_refused(tmp_path):
    hazy = _photos(tmp_path / "hazy", 1)
    Image.fromarray(rgb(8, 8)).save(hazy / "contact_sheet.png")
    before = digest_tree(tmp_path)
    result = invoke("eval", "--hazy", hazy, "--out", hazy, "--metrics", "entropy")
    assert_user_error(result, 2, REFUSED)
    assert digest_tree(tmp_path) == before


def test_identity_run_into_a_fresh_folder_keeps_pixels(tmp_path, identity_onnx):
    """The control case: a legal output next to the input works and leaves the input alone."""
    Image.fromarray(rgb(10, 12)).save(tmp_path / "a.png")
    before = digest_tree(tmp_path / "a.png")
    result = invoke("run", tmp_path / "a.png", "--model", identity_onnx)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_dehazed.png")), rgb(10, 12))
    assert digest_tree(tmp_path / "a.png") == before
