"""Paired on-the-fly data, held-out split, and the seeded evaluation-set writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dehazekit.data.datasets import PairedHaze, parse_presets, split_holdout, write_eval_set
from dehazekit.data.images import list_images, read_rgb, write_image
from dehazekit.runtimes.errors import ConfigError, InputError


@pytest.fixture()
def clear_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "clear"
    for i in range(4):
        write_image(folder / ("sub" if i % 2 else "") / f"im{i}.png", rng.uniform(0, 1, (40, 48, 3)))
    return folder


def test_paired_batch_shapes_and_haze_added(clear_dir):
    data = PairedHaze(list_images(clear_dir), ["homogeneous", "realistic"], crop=32)
    hazy, clear, params = data.batch(np.random.default_rng(0), 3)
    assert hazy.shape == clear.shape == (3, 3, 32, 32)
    assert {p["preset"] for p in params} <= {"homogeneous", "realistic"}
    assert all(0 < p["density"] < 1 for p in params)
    assert float((hazy - clear).abs().mean()) > 0.01


def test_rotate_turns_hazy_and_clear_together_by_all_four_quarter_turns(clear_dir):
    files = list_images(clear_dir)
    plain = PairedHaze(files, ["outdoor"], crop=32)
    turned = PairedHaze(files, ["outdoor"], crop=32, rotate=True)
    seen = set()
    for seed in range(12):
        h0, c0, _ = plain.sample(np.random.default_rng(seed))
        h1, c1, params = turned.sample(np.random.default_rng(seed))
        k = params["rot90"]
        seen.add(k)
        np.testing.assert_array_equal(h1, np.rot90(h0, k))
        np.testing.assert_array_equal(c1, np.rot90(c0, k))
    assert seen == {0, 1, 2, 3}


def test_split_is_disjoint_and_stable(clear_dir):
    files = list_images(clear_dir)
    train, held = split_holdout(files, 0.3)
    assert held and train and not set(train) & set(held)
    assert split_holdout(files, 0.3) == (train, held)


def test_eval_set_writer_is_reproducible(clear_dir, tmp_path):
    a = write_eval_set(clear_dir, tmp_path / "a", "realistic", count=3, seed=4, size=32)
    b = write_eval_set(clear_dir, tmp_path / "b", "realistic", count=3, seed=4, size=32)
    names = [p.name for p in list_images(a / "hazy")]
    assert len(names) == 3 and names == [p.name for p in list_images(a / "clear")]
    for n in names:
        np.testing.assert_array_equal(read_rgb(a / "hazy" / n), read_rgb(b / "hazy" / n))
    record = json.loads((a / "params.json").read_text())
    assert record["preset"] == "realistic" and len(record["images"]) == 3


def test_errors(clear_dir, tmp_path):
    with pytest.raises(ConfigError):
        parse_presets("homogeneous+foggy")
    with pytest.raises(InputError):
        PairedHaze(list_images(clear_dir), ["homogeneous"], crop=64)
    with pytest.raises(InputError):
        list_images(tmp_path / "nope")
