"""The threaded pipeline on real media: video round trip, folders, audio, shutdown on failure."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dehazekit.runtimes import Dehazer, open_sink, open_source, run_pipeline
from dehazekit.runtimes.errors import InputError
from tests.runtimes.media import make_video, moving_frames, probe, write_images


def test_video_round_trip_keeps_count_size_rate_and_timestamps(tmp_path, tiny_onnx):
    src = make_video(tmp_path / "in.mp4", count=14, width=46, height=34, fps=15)  # not multiples of 4
    source = open_source(src)
    report = run_pipeline(source, open_sink(tmp_path / "out.mp4", source), Dehazer(tiny_onnx, batch=4))
    before, after = probe(src), probe(tmp_path / "out.mp4")
    assert report.frames == after["frames"] == before["frames"] == 14
    assert after["size"] == (46, 34)
    assert after["pts"] == before["pts"]
    assert after["fps"] == pytest.approx(15, rel=0.01)
    assert report.skipped == [] and report.fps > 0


def test_audio_is_copied(tmp_path, tiny_onnx):
    src = make_video(tmp_path / "a.mp4", count=12, audio=True)
    source = open_source(src)
    run_pipeline(source, open_sink(tmp_path / "out.mp4", source), Dehazer(tiny_onnx))
    assert probe(tmp_path / "out.mp4")["kinds"] == ["audio", "video"]


def test_folder_to_folder_keeps_names(tmp_path, tiny_onnx):
    write_images(tmp_path / "in", 3)
    (tmp_path / "in" / "sub").mkdir()
    write_images(tmp_path / "in" / "sub", 1)
    source = open_source(tmp_path / "in")
    report = run_pipeline(source, open_sink(tmp_path / "out", source), Dehazer(tiny_onnx, batch=2))
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert report.frames == 4 and names == ["img_00.png", "img_01.png", "img_02.png", "sub/img_00.png"]


def test_glob_and_callback_sink(tmp_path, tiny_onnx):
    write_images(tmp_path, 3)
    got = []
    source = open_source(str(tmp_path / "img_0[01].png"))
    run_pipeline(
        source,
        open_sink(lambda item, frame: got.append((item.name, frame.shape)), source),
        Dehazer(tiny_onnx),
    )
    assert got == [("img_00.png", (30, 40, 3)), ("img_01.png", (30, 40, 3))]


def test_iterable_source_to_video(tmp_path, tiny_onnx):
    source = open_source(iter(moving_frames(6, 32, 24)))
    report = run_pipeline(source, open_sink(tmp_path / "it.mp4", source), Dehazer(tiny_onnx))
    assert report.frames == 6 and probe(tmp_path / "it.mp4")["frames"] == 6


def test_failure_mid_stream_leaves_no_output_and_stops_every_thread(tmp_path, tiny_onnx):
    def frames():
        yield from moving_frames(5, 32, 24)
        yield np.zeros((24, 32, 3), np.float32)  # the caller's bug, at frame 5

    out = tmp_path / "out.mp4"
    source = open_source(frames())
    with pytest.raises(InputError, match="frame 5"):
        run_pipeline(source, open_sink(out, source), Dehazer(tiny_onnx))
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temporary
    assert not [t for t in threading.enumerate() if t.name.startswith("dehazekit-")]


def test_ctrl_c_stops_cleanly(tmp_path, tiny_onnx):
    def interrupt(report):
        if report.frames == 3:
            raise KeyboardInterrupt

    src = make_video(tmp_path / "in.mp4", count=20)
    source = open_source(src)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(source, open_sink(tmp_path / "out.mp4", source), Dehazer(tiny_onnx), on_frame=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert not [t for t in threading.enumerate() if t.name.startswith("dehazekit-")]


def test_queues_are_bounded_so_decoding_waits_for_inference(tiny_onnx):
    """Back-pressure: with a slow consumer the decoder is never more than the queue size ahead."""
    decoded, ahead = [], []
    written = []

    def frames():
        for i, frame in enumerate(moving_frames(30, 16, 16)):
            decoded.append(i)
            ahead.append(len(decoded) - len(written))
            yield frame

    def slow_sink(item, frame):
        threading.Event().wait(0.005)
        written.append(item.index)

    source = open_source(frames())
    run_pipeline(source, open_sink(slow_sink, source), Dehazer(tiny_onnx), queue_size=2)
    assert written == list(range(30))
    # inbox 2 + outbox 2 + two batches in flight (one collected while the next is submitted)
    # + one frame each held by decoder/encoder
    assert max(ahead) <= 2 + 2 + 2 + 2


def test_mpeg4_fallback_codec_writes_a_playable_video(tmp_path, tiny_onnx):
    from dehazekit.runtimes.video_sink import VideoSink

    source = open_source(make_video(tmp_path / "in.mp4", count=5, width=48, height=32))
    sink = VideoSink(tmp_path / "out.mp4", source.info, codec="mpeg4")
    run_pipeline(source, sink, Dehazer(tiny_onnx))
    import av

    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert probe(tmp_path / "out.mp4")["frames"] == 5


def test_greyscale_and_rgba_images_are_read_as_rgb(tmp_path, tiny_onnx):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((20, 24), 90, np.uint8), mode="L").save(tmp_path / "in" / "grey.png")
    Image.fromarray(np.full((20, 24, 4), 200, np.uint8), mode="RGBA").save(tmp_path / "in" / "rgba.png")
    source = open_source(tmp_path / "in")
    shapes = []
    report = run_pipeline(
        source, open_sink(lambda item, frame: shapes.append(frame.shape), source), Dehazer(tiny_onnx, batch=2)
    )
    assert report.frames == 2 and shapes == [(20, 24, 3), (20, 24, 3)] and report.skipped == []
