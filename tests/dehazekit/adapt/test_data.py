"""UnpairedHazy: splits, digest, samplers, bad inputs (non-images, corrupt, tiny, empty), video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dehazekit.adapt.data import UnpairedHazy
from dehazekit.runtimes.errors import ConfigError, InputError
from tests.dehazekit.adapt.conftest import write_hazy_images


def test_splits_disjoint_cover_all_and_seeded(tmp_path: Path) -> None:
    write_hazy_images(tmp_path, 9)
    a, b, c = (UnpairedHazy(tmp_path, size=32, seed=s) for s in (1, 1, 2))
    assert set(a.splits["w"]).isdisjoint(a.splits["alpha"])
    assert sorted(a.splits["w"] + a.splits["alpha"]) == list(range(9))
    assert len(a.splits["w"]) == 4 and len(a.splits["alpha"]) == 5
    assert a.splits == b.splits
    assert a.splits != c.splits  # another seed, another split (9 choose 4 makes a collision unlikely)


def test_digest_tracks_names_and_sizes(tmp_path: Path) -> None:
    paths = write_hazy_images(tmp_path, 3)
    first = UnpairedHazy(tmp_path, size=32).digest
    assert UnpairedHazy(tmp_path, size=32, seed=5).digest == first  # independent of the seed
    paths[0].write_bytes(paths[0].read_bytes() + b"\0")  # PNG readers ignore trailing bytes
    assert UnpairedHazy(tmp_path, size=32).digest != first


def test_sampler_shapes_range_and_resume(hazy_dir: Path) -> None:
    data = UnpairedHazy(hazy_dir, size=32, seed=0)
    sampler = data.sampler("w", batch_size=3)
    batch = next(sampler)
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == torch.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    state = sampler.state_dict()
    expected = [next(sampler) for _ in range(2)]
    again = data.sampler("w", batch_size=3)
    again.load_state_dict(state)
    assert all(torch.equal(x, next(again)) for x in expected)
    fresh = [next(data.sampler("w", 3)) for _ in range(2)]
    assert torch.equal(fresh[0], fresh[1])  # same seed -> same stream
    assert not torch.equal(next(data.sampler("alpha", 3)), fresh[0])


def test_sampler_draws_only_from_its_split(tmp_path: Path) -> None:
    from PIL import Image

    for i, value in enumerate((10, 60, 110, 160, 210, 250)):  # one flat colour per image
        Image.fromarray(np.full((36, 36, 3), value, np.uint8)).save(tmp_path / f"flat_{i}.png")
    data = UnpairedHazy(tmp_path, size=32, seed=3)
    values = {name: int(name.split("_")[1].split(".")[0]) for name in data.names("w") + data.names("alpha")}
    levels = {(10, 60, 110, 160, 210, 250)[values[n]] for n in data.names("w")}
    seen = {round(float(x) * 255) for x in next(data.sampler("w", 16)).mean(dim=(1, 2, 3))}
    assert seen <= levels


def test_non_images_and_corrupt_files_are_skipped_and_listed(hazy_dir: Path) -> None:
    (hazy_dir / "notes.txt").write_text("not an image")
    (hazy_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (hazy_dir / "hazy_00.png").read_bytes()
    (hazy_dir / "truncated.png").write_bytes(good[: len(good) // 2])
    data = UnpairedHazy(hazy_dir, size=32)
    skipped = {Path(s["path"]).name: s["reason"] for s in data.report.skipped}
    assert set(skipped) == {"notes.txt", "broken.jpg", "truncated.png"}
    assert "not an image" in skipped["notes.txt"] and "unreadable" in skipped["truncated.png"]
    assert len(data) == 6


def test_small_images_are_upscaled_and_listed(tmp_path: Path) -> None:
    write_hazy_images(tmp_path, 2, size=(20, 28))
    write_hazy_images(tmp_path / "big", 1)
    data = UnpairedHazy([*sorted(tmp_path.glob("*.png")), tmp_path / "big" / "hazy_00.png"], size=32)
    assert sorted(data.report.upscaled) == ["hazy_00.png", "hazy_01.png"]
    shapes = sorted(item.pixels.shape[:2] for item in data.items)
    assert shapes == [(32, 45), (32, 45), (40, 48)]  # aspect kept, short side raised to the crop size
    assert next(data.sampler("all", 2)).shape == (2, 3, 32, 32)


def test_empty_and_too_few(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no usable image"):
        UnpairedHazy(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no usable image"):
        UnpairedHazy(tmp_path / "junk")
    write_hazy_images(tmp_path / "one", 1)
    with pytest.raises(InputError, match="at least 2"):
        UnpairedHazy(tmp_path / "one", size=32)
    with pytest.raises(InputError, match="not found"):
        UnpairedHazy(tmp_path / "missing")
    write_hazy_images(tmp_path / "two", 2)
    with pytest.raises(ConfigError):
        UnpairedHazy(tmp_path / "two", size=32).sampler("test", 1)


def test_video_frames(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(12):
            frame = np.full((32, 48, 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = UnpairedHazy(path, size=32, video_frames=4)
    assert len(data) == 4
    frames = sorted(int(it.name.split("#")[1]) for it in data.items)
    assert frames == [0, 4, 6, 10]  # evenly spread over 12 frames while holding at most 8 decoded
    assert float(data.items[1].pixels.mean()) > float(data.items[0].pixels.mean())  # later = brighter
    assert next(data.sampler("alpha", 2)).shape == (2, 3, 32, 32)


def test_read_only_decoded_pixels_give_no_torch_warning(tmp_path: Path) -> None:
    # decoded images are read-only arrays; a torch view of one warns in the user's terminal. torch warns
    # once per process, so the check runs in a fresh one.
    import subprocess
    import sys

    write_hazy_images(tmp_path, 3)
    script = (
        "import sys\n"
        "from dehazekit.adapt.data import UnpairedHazy\n"
        "data = UnpairedHazy(sys.argv[1], size=24, seed=0)\n"
        "for item in data.items: item.pixels.setflags(write=False)\n"
        "next(data.sampler('all', batch_size=2)); data.fixed_crops(2)\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
