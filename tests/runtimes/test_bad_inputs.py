"""Bad inputs give clear errors or listed skips, and never a partial output."""

from __future__ import annotations

import av
import pytest

from dehazekit.runtimes import Dehazer, open_sink, open_source, run_pipeline
from dehazekit.runtimes.errors import InputError, VideoError
from tests.runtimes.media import make_video, probe, write_images


def _run(src, out, model):
    source = open_source(src)
    return run_pipeline(source, open_sink(out, source), Dehazer(model))


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        open_source(tmp_path / "nothing.mp4")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="folder holds no images"):
        open_source(tmp_path)
    with pytest.raises(InputError, match="glob matched no images"):
        open_source(str(tmp_path / "*.jpg"))


def test_corrupt_image_among_good_ones_is_skipped_and_listed(tmp_path, tiny_onnx):
    write_images(tmp_path / "in", 3)
    (tmp_path / "in" / "img_01b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = _run(tmp_path / "in", tmp_path / "out", tiny_onnx)
    assert report.frames == 3
    assert [s.item.endswith("img_01b.png") for s in report.skipped] == [True]
    assert "cannot read image" in report.skipped[0].reason
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_00.png", "img_01.png", "img_02.png"]


def test_zero_frame_video_is_an_error_without_output(tmp_path, tiny_onnx):
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()  # header only: FFmpeg then drops the sample-less stream
    with pytest.raises(VideoError, match="empty.mp4 has no video stream"):
        _run(empty, tmp_path / "out.mp4", tiny_onnx)
    with pytest.raises(InputError, match="no frames could be read"):  # zero frames from an iterable
        _run(iter([]), tmp_path / "out2.mp4", tiny_onnx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_truncated_video_processes_every_decodable_frame_and_reports_the_rest(tmp_path, tiny_onnx):
    full = make_video(tmp_path / "full.mp4", count=24)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    decodable = 0
    with av.open(str(cut)) as container:  # count independently what FFmpeg can still decode
        try:
            for _ in container.decode(video=0):
                decodable += 1
        except av.FFmpegError:
            pass
    assert 0 < decodable < 24
    report = _run(cut, tmp_path / "out.mp4", tiny_onnx)
    assert report.frames == decodable == probe(tmp_path / "out.mp4")["frames"]
    assert any(f"{24 - decodable} of 24 frames could not be decoded" in s.reason for s in report.skipped)


def test_file_that_is_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(VideoError, match="cannot open video junk.mp4"):
        open_source(junk)


def test_wrong_model_file_leaves_no_output(tmp_path):
    from dehazekit.runtimes.errors import ModelFileError

    model = tmp_path / "model.onnx"
    model.write_bytes(b"not onnx")
    with pytest.raises(ModelFileError):
        Dehazer(model)


def test_model_with_mismatched_channels_fails_before_writing(tmp_path):
    from tests.runtimes.onnx_models import export_tiny

    model = export_tiny(tmp_path / "m4.onnx", channels=4)
    src = make_video(tmp_path / "in.mp4", count=4)
    with pytest.raises(InputError, match="channels"):
        _run(src, tmp_path / "out.mp4", model)
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_damaged_middle_keeps_the_frames_after_the_damage(tmp_path, tiny_onnx):
    data = bytearray(make_video(tmp_path / "ok.mp4", count=24).read_bytes())
    start, stop = len(data) * 45 // 100, len(data) * 55 // 100
    data[start:stop] = b"\x5a" * (stop - start)  # overwrite a tenth of the media data mid-file
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    report = _run(bad, tmp_path / "out.mp4", tiny_onnx)
    reasons = " ".join(s.reason for s in report.skipped)
    missing = 24 - report.frames
    assert 0 < missing < 12  # frames past the damage were decoded too
    assert f"{missing} of 24 frames could not be decoded" in reasons
    assert probe(tmp_path / "out.mp4")["frames"] == report.frames
