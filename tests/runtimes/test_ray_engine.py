"""--engine ray on a local 2-CPU Ray cluster started and stopped here: same outputs as the local pipeline
(bit-exact images, same video frames and timestamps, audio kept), skip list, and recovery from a killed
worker with every output written exactly once."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dehazekit.runtimes.errors import MissingDependencyError
from tests.runtimes.media import make_video, probe, write_images

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _local(source: Path, model: Path, out: Path, **sink):
    from dehazekit.runtimes.dehazer import Dehazer
    from dehazekit.runtimes.pipeline import Pipeline
    from dehazekit.runtimes.sources import open_sink, open_source

    src = open_source(str(source))
    with Dehazer(model) as dehazer:
        return Pipeline(dehazer).run(src, open_sink(out, src, **sink))


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def test_images_bit_exact_with_the_local_runner_and_same_skips(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray

    write_images(tmp_path / "in", 3, width=40, height=30)
    write_images(tmp_path / "in" / "sub", 2, width=37, height=29)  # odd sizes: the padding path
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    local = _local(tmp_path / "in", tiny_onnx, tmp_path / "local")
    report = run_ray(
        tmp_path / "in", tiny_onnx, tmp_path / "ray", options=RayOptions(workers=2, images_per_task=2)
    )
    ours, theirs = _files(tmp_path / "ray"), _files(tmp_path / "local")
    assert sorted(ours) == sorted(theirs) and len(ours) == 5
    for name in ours:
        np.testing.assert_array_equal(
            np.asarray(Image.open(ours[name])), np.asarray(Image.open(theirs[name]))
        )
    assert report.frames == local.frames == 5
    assert [(s.item, s.reason) for s in report.skipped] == [(s.item, s.reason) for s in local.skipped]
    assert report.backend["backend"] == "onnxruntime"


def test_video_chunks_keep_frames_timestamps_and_audio(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray
    from dehazekit.runtimes.video_chunks import plan_chunks

    clip = make_video(tmp_path / "clip.mp4", count=14, width=48, height=34, fps=12, audio=True)  # GOP of 4
    chunks = plan_chunks(clip, 4)
    assert [c.frames for c in chunks] == [4, 4, 4, 2] and chunks[1].start_pts > 0
    _local(clip, tiny_onnx, tmp_path / "local.mp4")
    report = run_ray(clip, tiny_onnx, tmp_path / "ray.mp4", options=RayOptions(workers=2, chunk_frames=4))
    local, ours = probe(tmp_path / "local.mp4"), probe(tmp_path / "ray.mp4")
    assert ours["frames"] == local["frames"] == report.frames == 14
    assert ours["pts"] == local["pts"] and ours["size"] == local["size"]
    assert ours["kinds"] == local["kinds"] == ["audio", "video"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # parts folder and temporaries gone


def test_a_worker_killed_mid_job_still_yields_every_output_once(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray
    from tests.runtimes.ray_faults import KillOnceFactory

    write_images(tmp_path / "in", 6, width=40, height=30)
    marker = tmp_path / "killed"
    report = run_ray(
        tmp_path / "in",
        tiny_onnx,
        tmp_path / "ray",
        options=RayOptions(workers=2, images_per_task=2),
        factory=KillOnceFactory(tiny_onnx, marker),
    )
    assert marker.exists()  # a worker really died
    _local(tmp_path / "in", tiny_onnx, tmp_path / "local")
    ours, theirs = _files(tmp_path / "ray"), _files(tmp_path / "local")
    assert sorted(ours) == sorted(theirs) and len(ours) == 6  # no duplicates, no temporaries, none missing
    assert report.frames == 6 and report.skipped == []
    for name in ours:
        np.testing.assert_array_equal(
            np.asarray(Image.open(ours[name])), np.asarray(Image.open(theirs[name]))
        )


def test_cli_engine_ray_prints_the_summary(cluster, tmp_path, tiny_onnx):
    from typer.testing import CliRunner

    from dehazekit.cli.main import app

    write_images(tmp_path / "in", 2, width=40, height=30)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "in"), "--model", str(tiny_onnx), "--engine", "ray", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "in_dehazed").iterdir()) == ["img_00.png", "img_01.png"]
    assert "onnxruntime" in result.output and "skipped" in result.output


def test_without_ray_the_engine_names_the_install_fix(monkeypatch, tmp_path, tiny_onnx):
    from typer.testing import CliRunner

    from dehazekit.cli.main import app
    from dehazekit.runtimes.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'dehazekit\[ray\]'"):
        import_ray()
    write_images(tmp_path / "in", 1)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "in"), "--model", str(tiny_onnx), "--engine", "ray"]
    )
    assert result.exit_code == 2 and "pip install 'dehazekit[ray]'" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "in_dehazed").exists()


def _bframe_clip(path: Path, count: int = 13) -> Path:
    """x264 with B-frames and a GOP of 5: packets arrive out of presentation order."""
    import av

    from tests.runtimes.media import moving_frames

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 40, 32, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "5", "bf": "2", "sc_threshold": "0"}
        for frame in moving_frames(count, 40, 32):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_reordered_source_frames_each_land_in_one_chunk(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray
    from dehazekit.runtimes.video_chunks import decode_chunk, plan_chunks

    clip = _bframe_clip(tmp_path / "b.mp4")
    chunks = plan_chunks(clip, 3)
    assert len(chunks) == 3
    pts = [item.pts for chunk in chunks for item in decode_chunk(clip, chunk)]
    assert pts == probe(clip)["pts"]  # every frame once, in order, across chunk boundaries
    _local(clip, tiny_onnx, tmp_path / "local.mp4")
    run_ray(clip, tiny_onnx, tmp_path / "ray.mp4", options=RayOptions(workers=2, chunk_frames=3))
    assert probe(tmp_path / "ray.mp4")["pts"] == probe(tmp_path / "local.mp4")["pts"]


def test_a_folder_of_videos_runs_as_one_fleet(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray

    (tmp_path / "cams").mkdir()
    make_video(tmp_path / "cams" / "a.mp4", count=8, fps=8, audio=True)
    make_video(tmp_path / "cams" / "b.mp4", count=6, fps=6)
    report = run_ray(tmp_path / "cams", tiny_onnx, options=RayOptions(workers=2, chunk_frames=4))
    assert report.frames == 14 and report.output == str(tmp_path / "cams_dehazed")
    for name in ("a.mp4", "b.mp4"):
        _local(tmp_path / "cams" / name, tiny_onnx, tmp_path / f"local_{name}")
        ours, local = probe(tmp_path / "cams_dehazed" / name), probe(tmp_path / f"local_{name}")
        assert (ours["pts"], ours["kinds"]) == (local["pts"], local["kinds"])


def test_a_worker_killed_mid_chunk_still_yields_the_whole_video(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray
    from tests.runtimes.ray_faults import KillOnceFactory

    clip = make_video(tmp_path / "clip.mp4", count=12, fps=12, audio=True)
    marker = tmp_path / "killed"
    report = run_ray(
        clip,
        tiny_onnx,
        tmp_path / "ray.mp4",
        options=RayOptions(workers=2, chunk_frames=4),
        factory=KillOnceFactory(tiny_onnx, marker),
    )
    assert marker.exists() and report.frames == 12  # the killed chunk was redone, counted once
    _local(clip, tiny_onnx, tmp_path / "local.mp4")
    ours, local = probe(tmp_path / "ray.mp4"), probe(tmp_path / "local.mp4")
    assert (ours["pts"], ours["kinds"]) == (local["pts"], local["kinds"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "killed", "local.mp4", "ray.mp4"]


def test_images_under_a_filesystem_uri_read_through_pyarrow(cluster, tmp_path, tiny_onnx):
    from dehazekit.runtimes.ray_engine import RayOptions, run_ray

    write_images(tmp_path / "in" / "sub", 2, width=40, height=30)
    (tmp_path / "in" / "sub" / "broken.png").write_bytes(b"not a png")
    report = run_ray(f"file://{tmp_path / 'in'}", tiny_onnx, tmp_path / "ray", options=RayOptions(workers=1))
    _local(tmp_path / "in", tiny_onnx, tmp_path / "local")
    ours, theirs = _files(tmp_path / "ray"), _files(tmp_path / "local")
    assert sorted(ours) == sorted(theirs) == ["sub/img_00.png", "sub/img_01.png"]
    for name in ours:
        np.testing.assert_array_equal(
            np.asarray(Image.open(ours[name])), np.asarray(Image.open(theirs[name]))
        )
    assert report.frames == 2 and [s.item for s in report.skipped] == [
        str(tmp_path / "in" / "sub" / "broken.png")
    ]
