"""Video files as phones and cameras write them: rotation tags, odd sizes, variable frame rate, 10-bit and
4:4:4 pixels, audio. Through `dehazekit run` with an identity model, the output must play upright with the
same frames, timing and audio; broken files give one clear line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.reliability.conftest import assert_user_error, digest_tree, files_in, invoke
from tests.runtimes.media import make_video, moving_frames, probe


def make_clip(
    path: Path,
    count: int = 6,
    width: int = 48,
    height: int = 32,
    rotation: int | None = None,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    pts: list[int] | None = None,
) -> list[np.ndarray]:
    """Write a clip whose left third is bright (so orientation is visible); return the stored frames."""
    frames = []
    for frame in moving_frames(count, width, height):
        frame = frame.copy()
        frame[:, : width // 3] = 250
        frames.append(frame)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts is not None:
                vf.pts, vf.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return frames


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def rotation_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return int(next(container.decode(video=0)).rotation)


@pytest.mark.parametrize("rotation, turns", [(-90, -1), (90, 1), (180, 2)])
def test_rotated_phone_clip_comes_out_upright(tmp_path, identity_onnx, rotation, turns):
    src = tmp_path / "phone.mp4"
    stored = make_clip(src, rotation=rotation)
    before = digest_tree(src)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert f"display rotation {rotation} applied to the pixels" in " ".join(result.output.split())
    got = decoded(tmp_path / "out.mp4")
    assert (
        rotation_of(tmp_path / "out.mp4") == 0
    )  # rotation applied to the pixels, no tag left to apply twice
    assert len(got) == len(stored)
    for frame, original in zip(got, stored):
        upright = np.rot90(original, turns)
        assert frame.shape == upright.shape
        assert np.abs(frame.astype(int) - upright).mean() < 4  # codec loss only
    assert digest_tree(src) == before


def test_adapt_sees_rotated_clip_frames_upright(tmp_path):
    from dehazekit.adapt.data import load_video_frames

    src = tmp_path / "phone.mp4"
    stored = make_clip(src, count=4, rotation=-90)
    items = load_video_frames(src, frames=2)
    for item in items:
        index = int(item.name.split("#")[1])
        assert item.pixels.shape == (48, 32, 3)
        assert np.abs(item.pixels.astype(int) - np.rot90(stored[index], -1)).mean() < 4


@pytest.mark.parametrize("kind", ["odd_size", "yuv444", "10bit", "vfr", "audio"])
def test_camera_formats_keep_frames_size_and_timing(tmp_path, identity_onnx, kind):
    src = tmp_path / "in.mp4"
    if kind == "audio":
        make_video(src, count=8, width=48, height=32, audio=True)
    else:
        options = {
            "odd_size": {"width": 33, "height": 25, "pix_fmt": "yuv444p"},
            "yuv444": {"pix_fmt": "yuv444p"},
            "10bit": {"pix_fmt": "yuv420p10le"},
            "vfr": {"pts": [0, 40, 200, 230, 600, 610]},
        }[kind]
        make_clip(src, **options)
    before, expected = digest_tree(src), probe(src)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    got = probe(tmp_path / "out.mp4")
    assert got["frames"] == expected["frames"] and got["size"] == expected["size"]
    assert got["kinds"] == expected["kinds"]  # the audio track is kept
    if kind == "vfr":
        in_tb = av.open(str(src)).streams.video[0].time_base
        out_tb = av.open(str(tmp_path / "out.mp4")).streams.video[0].time_base
        assert [float(p * out_tb) for p in got["pts"]] == pytest.approx(
            [float(p * in_tb) for p in expected["pts"]]
        )
    assert digest_tree(src) == before


@pytest.mark.parametrize(
    "content, phrase",
    [(b"", "cannot open video"), (b"this is a text file, not a movie\n", "cannot open video")],
)
@pytest.mark.parametrize("suffix", [".mp4", ".xyz"])
def test_broken_or_mislabelled_video_is_one_line(tmp_path, identity_onnx, content, phrase, suffix):
    src = tmp_path / f"clip{suffix}"
    src.write_bytes(content)
    result = invoke("run", src, "--model", identity_onnx, "--out", tmp_path / "out.mp4")
    assert_user_error(result, 2, phrase)
    assert files_in(tmp_path) == [src.name]


def test_truncated_video_keeps_what_decodes_and_says_so(tmp_path, identity_onnx):
    full = make_video(tmp_path / "full.mp4", count=24)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    result = invoke("run", cut, "--model", identity_onnx, "--out", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert "could not be decoded" in result.output or "reading stopped" in result.output
    assert 0 < probe(tmp_path / "out.mp4")["frames"] < 24
    assert sorted(files_in(tmp_path)) == ["cut.mp4", "full.mp4", "out.mp4"]
