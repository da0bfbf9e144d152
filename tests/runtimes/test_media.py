"""The media layer's listing and the budget helpers, below the CLI (the reliability suite drives the CLI)."""

from __future__ import annotations

import os

import pytest

from dehazekit.runtimes.budget import inference_threads, parse_memory, plan_tiles
from dehazekit.runtimes.errors import ConfigError, OutputError
from dehazekit.runtimes.media import glob_images, is_image, is_video, list_images, refuse_overwriting_inputs


def _touch(*paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_glob_matches_like_recursive_glob_without_following_loops(tmp_path):
    _touch(
        tmp_path / "a.jpg",
        tmp_path / "b.png",
        tmp_path / "x" / "c.jpg",
        tmp_path / "x" / "y" / "d.JPG",
        tmp_path / ".hidden.jpg",
    )
    os.symlink(".", tmp_path / "loop")
    found = lambda pattern: [p.relative_to(tmp_path).as_posix() for p in glob_images(str(tmp_path / pattern))]
    assert found("*.jpg") == ["a.jpg"]
    assert found("**/*.jpg") == ["a.jpg", "x/c.jpg"]
    assert found("x/*/*.[Jj][Pp][Gg]") == ["x/y/d.JPG"]
    assert found("?.png") == ["b.png"]


def test_listing_skips_dot_files_and_visits_each_folder_once(tmp_path):
    _touch(tmp_path / "a.ppm", tmp_path / "s" / "b.tif", tmp_path / ".a.dk1-abcdefgh.png")
    os.symlink("..", tmp_path / "s" / "up")
    assert [p.name for p in list_images(tmp_path)] == ["a.ppm", "b.tif"]
    assert is_image("x.PGM") and is_video("x.MOV") and not is_image("x.mp4")


def test_refuse_overwriting_inputs_sees_through_spellings(tmp_path):
    _touch(tmp_path / "d" / "a.png")
    with pytest.raises(OutputError, match="would overwrite an input"):
        refuse_overwriting_inputs([tmp_path / "d" / ".." / "d" / "a.png"], [tmp_path / "d" / "a.png"])
    refuse_overwriting_inputs([tmp_path / "d" / "b.png"], [tmp_path / "d" / "a.png"])  # a new file is fine


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4G", 4_000_000_000),
        ("512M", 512_000_000),
        ("2GiB", 2 * 2**30),
        ("1.5g", 1_500_000_000),
        ("off", None),
        ("none", None),
    ],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


def test_parse_memory_rejects_nonsense():
    with pytest.raises(ConfigError, match="unreadable memory size"):
        parse_memory("lots")


def test_thread_pick_leaves_cores_for_decode_and_encode():
    assert inference_threads("video", cores=2)[0] == 1
    assert inference_threads("video", cores=16)[0] == 14
    assert inference_threads("folder", cores=2)[0] == 1
    assert inference_threads("image", cores=8)[0] == 7
    assert inference_threads("video", requested=3, cores=2) == (3, "as requested")


def test_tile_plan_fits_the_budget():
    whole = plan_tiles(1000, 1000, 1, bytes_per_pixel=500, budget=10**9)
    assert whole.tile is None
    tiled = plan_tiles(4000, 3000, 1, bytes_per_pixel=500, budget=10**9)
    assert tiled.tile is not None and tiled.tile % 32 == 0
    frame_buffers = 46 * 4000 * 3000
    assert 500 * tiled.tile**2 <= 10**9 - frame_buffers
