"""Runtime pipeline: model-only vs end-to-end throughput on real 720p footage, and memory vs video length.

Model: a small exported ONNX network (TinyNet from tests/runtimes/onnx_models.py, width 8, one extra
conv, pad multiple 4), or any model given with --model. Video: ../shared/data/video/fog_road_720x1280.mp4
(90 frames, 30 fps, portrait 720x1280).

- model-only fps: ``backend.infer`` on a ready padded (B, 3, 1280, 720) float batch, B in --batch.
- end-to-end fps: the threaded pipeline decoding the real clip (PyAV) -> pre/pad -> infer -> crop/post
  -> H.264 encode to a temporary mp4, timed from first decode to the renamed file.
- memory: peak RSS of a fresh process running the pipeline over the clip looped 1x and 4x
  (timestamps continued, so the output is one 4x longer video). Flat memory = bounded queues work.

    OMP_NUM_THREADS=1 python benchmarks/runtime.py     # -> benchmarks/results/runtime.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dehazekit.runtimes import Dehazer, open_sink, run_pipeline
from dehazekit.runtimes.backends import open_backend
from dehazekit.runtimes.bench import model_only_fps, parse_batches
from dehazekit.runtimes.frames import FrameItem
from dehazekit.runtimes.io_utils import atomic_write_text
from dehazekit.runtimes.video import VideoSource

log = logging.getLogger("runtime_bench")
RESULTS = REPO / "benchmarks" / "results"
VIDEO = REPO.parent / "shared" / "data" / "video" / "fog_road_720x1280.mp4"


class LoopedVideo:
    """The clip ``loops`` times as one stream, timestamps continued so the output is one long video."""

    def __init__(self, path: Path, loops: int) -> None:
        self.path, self.loops = path, loops
        first = VideoSource(path)
        self.info = first.info
        self.info.frame_count = (first.info.frame_count or 0) * loops or None
        first.close()
        self.skipped = first.skipped

    def __iter__(self) -> Iterator[FrameItem]:
        offset, index = 0, 0
        for _ in range(self.loops):
            source = VideoSource(self.path)
            pts: list[int] = []
            for item in source:
                pts.append(item.pts)
                yield FrameItem(index, item.image, item.name, item.pts + offset, item.time_base)
                index += 1
            source.close()
            self.skipped.entries.extend(source.skipped.entries)
            interval = pts[-1] - pts[-2] if len(pts) > 1 else 1
            offset += pts[-1] - pts[0] + interval  # the next loop starts one frame after this one ended

    def close(self) -> None:
        pass


def end_to_end(model: Path, video: Path, batch: int, loops: int = 1) -> dict[str, Any]:
    """Run the full pipeline video -> temporary mp4; frames, seconds, fps, model share, peak RSS."""
    with tempfile.TemporaryDirectory() as tmp, Dehazer(model, batch=batch) as dehazer:
        dehazer.process_batch([next(iter(VideoSource(video))).image])  # warm-up, as model-only gets
        source = LoopedVideo(video, loops)
        report = run_pipeline(source, open_sink(Path(tmp) / "out.mp4", source), dehazer)
    return {
        "frames": report.frames,
        "seconds": report.seconds,
        "fps": report.fps,
        "infer_seconds": report.infer_seconds,
        "skipped": len(report.skipped),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry over the
    launching process's peak (Linux keeps rusage across execve), which hid the child's real figure."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_to_end_in_child(model: Path, video: Path, batch: int, loops: int) -> dict[str, Any]:
    """A fresh process per measurement so peak RSS belongs to that run alone."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.runtime import end_to_end; "
        f"from pathlib import Path; print(json.dumps(end_to_end(Path({str(model)!r}), "
        f"Path({str(video)!r}), {batch}, {loops})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stage_costs(model: Path, video: Path) -> dict[str, float]:
    """Each non-model stage alone, to explain the end-to-end/model-only ratio: decode fps, encode fps
    and pre+post-processing milliseconds per frame."""
    from dehazekit.runtimes.processing import from_model_batch, to_model_batch
    from dehazekit.runtimes.video_sink import VideoSink

    start = time.perf_counter()
    source = VideoSource(video)
    items = list(source)  # 90 frames of 720x1280 RGB: about 250 MB, fine for this one measurement
    source.close()
    decode_fps = len(items) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        sink = VideoSink(Path(tmp) / "enc.mp4", source.info, copy_audio=False)
        start = time.perf_counter()
        for item in items:
            sink.write(item, item.image)
        sink.close()
        encode_fps = len(items) / (time.perf_counter() - start)
    with open_backend(model, device="cpu") as backend:
        meta = backend.meta
    start = time.perf_counter()
    for item in items[:30]:
        from_model_batch(to_model_batch([item.image], meta), meta)
    prepost_ms = (time.perf_counter() - start) / 30 * 1000
    return {"decode_fps": decode_fps, "encode_fps": encode_fps, "pre_post_ms_per_frame": prepost_ms}


def default_model(folder: Path) -> Path:
    """The bundled default model exported to ONNX (benchmarks never import the test suite)."""
    from dehazekit.exporters import export_onnx
    from dehazekit.models import default_model_path

    return export_onnx(default_model_path(), folder / "default.onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--loops", type=int, default=4, help="length multiple for the memory check")
    parser.add_argument("--out", type=Path, default=RESULTS / "runtime.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.video.is_file():
        log.error("video not found: %s (needs ../shared)", args.video)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        result = measure(model, args.video, parse_batches(args.batch), args.loops)
    result["model"] = (
        str(args.model) if args.model else "TinyNet(width=8, depth=1) exported ONNX, pad multiple 4"
    )
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


def measure(model: Path, video: Path, batches: list[int], loops: int) -> dict[str, Any]:
    source = VideoSource(video)
    width, height = source.info.size
    source.close()
    rows = []
    with open_backend(model, device="cpu") as backend:
        for batch in batches:
            model_fps = model_only_fps(backend, width, height, batch, seconds=5.0)
            e2e = end_to_end_in_child(model, video, batch, 1)
            rows.append(
                {
                    "batch": batch,
                    "model_only_fps": model_fps,
                    "end_to_end_fps": e2e["fps"],
                    "ratio": e2e["fps"] / model_fps,
                    "frames": e2e["frames"],
                    "seconds": e2e["seconds"],
                }
            )
            log.info("batch %d: model-only %.2f fps, end-to-end %.2f fps", batch, model_fps, e2e["fps"])
        providers = backend.describe()["providers"]
    memory = {f"{n}x": end_to_end_in_child(model, video, batches[0], n) for n in (1, loops)}
    return {
        "video": video.name,
        "size": f"{width}x{height}",
        "providers": providers,
        "rows": rows,
        "stages": stage_costs(model, video),
        "memory": {
            k: {"frames": v["frames"], "peak_rss_mb": v["peak_rss_mb"], "fps": v["fps"]}
            for k, v in memory.items()
        },
        "rss_growth": memory[f"{loops}x"]["peak_rss_mb"] / memory["1x"]["peak_rss_mb"],
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores (shared)",
        "date": time.strftime("%Y-%m-%d"),
    }


def print_table(result: dict[str, Any]) -> None:
    print("| batch | model-only fps | end-to-end fps | ratio |\n|---|---|---|---|")
    for row in result["rows"]:
        print(
            f"| {row['batch']} | {row['model_only_fps']:.2f} | {row['end_to_end_fps']:.2f} "
            f"| {row['ratio']:.2f} |"
        )
    stages = result["stages"]
    print(
        f"decode {stages['decode_fps']:.1f} fps, encode {stages['encode_fps']:.1f} fps, "
        f"pre+post {stages['pre_post_ms_per_frame']:.1f} ms/frame"
    )
    for key, value in result["memory"].items():
        print(f"peak RSS {key} ({value['frames']} frames): {value['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
