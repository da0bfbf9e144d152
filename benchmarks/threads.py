"""Inference threads beside the pipeline's own decode/encode threads: onnxruntime's default vs the pick.

The bundled default model (gunet-t, its cached verified ONNX) dehazes the first N frames of a real fog
clip through the full pipeline (PyAV decode thread -> inference -> x264 encode thread -> mp4), once with
onnxruntime's default intra-op thread count (one per core) and once with ``runtimes.budget``'s pick
(cores left after decode/encode, at least 1), alternating, ``--repeats`` times each; medians reported.

    OMP_NUM_THREADS=1 python benchmarks/threads.py --frames 60 --repeats 2   # -> results/threads.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dehazekit.cli.run_model import choose_model
from dehazekit.models import default_model_path
from dehazekit.runtimes import Dehazer, open_sink, run_pipeline
from dehazekit.runtimes.budget import cpu_cores, inference_threads
from dehazekit.runtimes.io_utils import atomic_write_text
from dehazekit.runtimes.video import VideoSource

log = logging.getLogger("threads_bench")
VIDEO = REPO.parent / "shared" / "data" / "video" / "fog_path_478x850.mp4"


class FirstFrames:
    """The first ``count`` frames of a video source (same info, audio dropped)."""

    def __init__(self, path: Path, count: int) -> None:
        self.inner = VideoSource(path)
        self.info, self.skipped, self.count = self.inner.info, self.inner.skipped, count
        self.info.frame_count, self.info.has_audio = count, False

    def __iter__(self):
        return itertools.islice(iter(self.inner), self.count)

    def close(self) -> None:
        self.inner.close()


def one_run(model: Path, video: Path, frames: int, threads: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp, Dehazer(model, threads=threads, max_memory=None) as dehazer:
        source = FirstFrames(video, frames)
        start = time.perf_counter()
        report = run_pipeline(source, open_sink(Path(tmp) / "out.mp4", source), dehazer)
        seconds = time.perf_counter() - start
    assert report.frames == frames, report.frames
    return frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="an .onnx model (default: the bundled one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "threads.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = args.model or choose_model(None, default_model_path()).path
    chosen, why = inference_threads("video")
    runs: dict[str, list[float]] = {"onnxruntime default": [], f"chosen ({chosen})": []}
    for repeat in range(args.repeats):
        for name, threads in (("onnxruntime default", None), (f"chosen ({chosen})", chosen)):
            fps = one_run(model, args.video, args.frames, threads)
            runs[name].append(fps)
            log.info("repeat %d %s: %.2f fps", repeat, name, fps)
    result = {
        "video": str(args.video.name),
        "frames": args.frames,
        "model": str(args.model.name) if args.model else "bundled gunet-t (cached ONNX)",
        "cores": cpu_cores(),
        "chosen_threads": chosen,
        "why": why,
        "repeats": args.repeats,
        "fps": runs,
        "median_fps": {k: statistics.median(v) for k, v in runs.items()},
        "machine": platform.platform(),
        "load_average": os.getloadavg(),
        "command": " ".join(["python", *sys.argv]),
    }
    names = list(runs)
    result["ratio_chosen_over_default"] = result["median_fps"][names[1]] / result["median_fps"][names[0]]
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_fps"]), f"ratio {result['ratio_chosen_over_default']:.2f}")


if __name__ == "__main__":
    main()
