"""Fleet dehazing: the local threaded pipeline vs `--engine ray` with 1 and 2 workers, same inputs, one run.

Inputs: the real hazy photos of ../shared/data/real_hazy/fattal_rtts_ridcp (36 JPEGs, ~700x500) and the
four fog clips of ../shared/data/video (527 frames, 478x850 and 720x1280, three with audio; each a single
GOP, so each clip is one chunk and the parallelism is across clips). Model: the registered tiny-gunet backbone
(seeded random weights; throughput does not depend on them) exported with dehazekit.exporters.export_onnx,
onnxruntime CPU. Ray: a local cluster started once (`ray.init(num_cpus=2)`), its start-up timed apart;
each Ray run includes actor start-up and model loading. Runs alternate (local, ray-1, ray-2) for --repeats
rounds; the median is reported.

    OMP_NUM_THREADS=1 DEHAZEKIT_SHARED=../shared python benchmarks/ray_scale.py --repeats 2
    # -> benchmarks/results/ray_scale.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dehazekit.runtimes import Dehazer, open_sink, open_source, run_pipeline  # noqa: E402
from dehazekit.runtimes.io_utils import atomic_write_text  # noqa: E402
from dehazekit.runtimes.ray_engine import RayOptions, run_ray  # noqa: E402

log = logging.getLogger("ray_scale")
SHARED = Path(os.environ.get("DEHAZEKIT_SHARED", REPO.parent / "shared")) / "data"
IMAGES = SHARED / "real_hazy" / "fattal_rtts_ridcp"
VIDEOS = SHARED / "video"


def local_run(source: Path, model: Path, out: Path) -> int:
    """The local engine as `dehazekit run` does it; a folder of videos runs video by video."""
    videos = sorted(source.glob("*.mp4")) if source.name == "clips" else [source]
    frames = 0
    for item in videos:
        src = open_source(str(item))
        target = out / item.name if item.suffix else out
        with Dehazer(model) as dehazer:
            frames += run_pipeline(src, open_sink(target, src), dehazer).frames
    return frames


def tiny_model(folder: Path) -> Path:
    """tiny-gunet (seeded) as ONNX, through the exporter users run (benchmarks never import the tests)."""
    import torch

    from dehazekit.backbones import create_backbone
    from dehazekit.exporters.onnx_export import export_onnx

    torch.manual_seed(0)
    return export_onnx(create_backbone("tiny-gunet").eval(), folder / "tiny-gunet.onnx")


def timed(fn, *args, **kwargs) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn(*args, **kwargs)
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sections", default="images,videos", help="images, videos or both")
    parser.add_argument("--videos", default="*.mp4", help="glob of clips in ../shared/data/video")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ray_scale.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import ray

    work = Path(tempfile.mkdtemp(prefix="ray_scale."))
    model = tiny_model(work)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    results: dict[str, dict[str, list]] = {}
    try:
        clips = work / "clips"  # the chosen clips, linked into one folder (a fleet of videos)
        clips.mkdir()
        for clip in sorted(VIDEOS.glob(args.videos)):
            (clips / clip.name).symlink_to(clip)
        for name in args.sections.split(","):
            source = {"images": IMAGES, "videos": clips}[name]
            runs: dict[str, list] = {"local": [], "ray-1": [], "ray-2": []}
            for _ in range(args.repeats):
                for label, rows in runs.items():
                    out = work / f"{name}-{label}"
                    shutil.rmtree(out, ignore_errors=True)
                    if label == "local":
                        seconds, frames = timed(local_run, source, model, out)
                    else:
                        options = RayOptions(workers=int(label[-1]))
                        seconds, frames = timed(
                            lambda s=source, o=options, d=out: run_ray(s, model, d, options=o).frames
                        )
                    log.info("%s %s: %d frames in %.2f s", name, label, frames, seconds)
                    rows.append({"seconds": seconds, "frames": frames})
            results[name] = runs
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    summary = {name: _summary(runs) for name, runs in results.items()}
    report = {
        "ray_init_s": init_s,
        "repeats": args.repeats,
        "summary": summary,
        "runs": results,
        "inputs": {"images": str(IMAGES), "videos": sorted(p.name for p in VIDEOS.glob(args.videos))},
        "machine": {"cpus": 2, "python": platform.python_version(), "ray": ray.__version__},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print(json.dumps(summary, indent=2))


def _summary(runs: dict[str, list]) -> dict[str, dict[str, float]]:
    local = statistics.median(r["seconds"] for r in runs["local"])
    rows = {}
    for label, items in runs.items():
        seconds = statistics.median(r["seconds"] for r in items)
        frames = items[0]["frames"]
        rows[label] = {
            "seconds": seconds,
            "frames": frames,
            "fps": frames / seconds,
            "vs_local": local / seconds,
        }
    return rows


if __name__ == "__main__":
    main()
