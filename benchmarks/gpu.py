"""The edge-GPU measurements, as one script for a lent GPU (`device` tool): under 10 minutes on one H200.

Sections (each recorded separately; a missing package or an error in one does not lose the others):
  adapt      adapt step time, fp32 vs bf16 autocast, per backbone (gunet-t, convir-s, dea), 224 crops,
             batch 8, H2C objective on the ViT-B-32 architecture with random weights (timing only).
  inference  frames/s at 720p and 1080p, batch 1/4/8: torch eager fp32, torch fp16 (half weights), and
             onnxruntime CUDA fp32/fp16 through dehazekit's I/O-binding backend when the CUDA provider exists.
  pipeline   the end-to-end video pipeline on a real clip vs the same backend's model-only fps (ratio).
Writes benchmarks/results/gpu.json and gpu.md (a table for benchmarks/README.md), with GPU name and driver.

    python benchmarks/gpu.py                      # on the GPU machine
    python benchmarks/gpu.py --smoke              # tiny sizes on CPU: checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE_IMAGES = ROOT / "samples" / "images"
CLIP_CANDIDATES = [
    ROOT / "shared/data/video/fog_road_720x1280.mp4",
    ROOT / "../shared/data/video/fog_road_720x1280.mp4",
    ROOT / "samples/video/hazy_rocket.mp4",
]
FULL = {
    "backbones": ["gunet-t", "convir-s", "dea"],
    "crop": 224,
    "batch": 8,
    "steps": 6,
    "clip_frames": None,
    "sizes": {"720p": (720, 1280), "1080p": (1080, 1920)},
    "batches": [1, 4, 8],
    "seconds": 3.0,
}
SMOKE = {
    "backbones": ["tiny-gunet"],
    "crop": 32,
    "batch": 2,
    "steps": 2,
    "clip_frames": 6,
    "sizes": {"tiny": (48, 64)},
    "batches": [1, 2],
    "seconds": 0.2,
}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        try:
            smi = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            info["driver"] = subprocess.run(smi, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown"
    return info


def section(results: dict, name: str, fn: Callable[[], Any]) -> None:
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # a benchmark section failing is a result to report, not a crash
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)}
    print(f"[{name}] {time.perf_counter() - start:.1f} s", flush=True)


# --- adapt ----------------------------------------------------------------------------------------
def adapt_steps(plan: dict, device: str, clip: str) -> list[dict[str, Any]]:
    from dehazekit.adapt import AdaptConfig, adapt
    from dehazekit.backbones import create_backbone

    rows = []
    for backbone in plan["backbones"]:
        for precision in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as out:
                config = AdaptConfig(
                    objective="h2c",
                    clip=clip,
                    clip_pretrained="none",
                    search_steps=plan["steps"],
                    finetune_steps=plan["steps"],
                    batch_size=plan["batch"],
                    size=plan["crop"],
                    checkpoint_every=0,
                    preview_count=1,
                    out=out,
                    device=device,
                    precision=precision,
                )
                # random weights: only the step time is measured
                result = adapt(SAMPLE_IMAGES, create_backbone(backbone), config)
            rows.append(
                {
                    "backbone": backbone,
                    "precision": precision,
                    "search_ms": 1000 * result.timings["search"] / plan["steps"],
                    "finetune_ms": 1000 * result.timings["finetune"] / plan["steps"],
                }
            )
    return rows


# --- inference ------------------------------------------------------------------------------------
def _fps(run: Callable[[], Any], batch: int, seconds: float, sync: Callable[[], None]) -> float:
    for _ in range(2):
        run()
    sync()
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < seconds:
        run()
        count += 1
    sync()
    return count * batch / (time.perf_counter() - start)


def torch_fps(
    model: torch.nn.Module, shape: tuple[int, ...], device: str, half: bool, seconds: float
) -> float:
    net = model.to(device).eval()
    net = net.half() if half else net.float()
    x = torch.rand(shape, device=device, dtype=torch.float16 if half else torch.float32)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        return _fps(lambda: net(x), shape[0], seconds, sync)


def onnx_fps(path: Path, shape: tuple[int, ...], seconds: float, device: str) -> float:
    from dehazekit.runtimes.backends.onnx_backend import OnnxBackend

    with OnnxBackend(path, device=device) as backend:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        return _fps(lambda: backend.infer(x), shape[0], seconds, lambda: None)


def inference(plan: dict, device: str, onnx_files: dict[str, Path]) -> list[dict[str, Any]]:
    from dehazekit.backbones import create_backbone

    rows = []
    for backbone in plan["backbones"]:
        model = create_backbone(backbone)
        for label, (height, width) in plan["sizes"].items():
            for batch in plan["batches"]:
                shape = (batch, 3, height, width)
                row: dict[str, Any] = {"backbone": backbone, "size": label, "batch": batch}
                row["torch_fp32"] = torch_fps(model, shape, device, False, plan["seconds"])
                if device == "cuda":
                    row["torch_fp16"] = torch_fps(model, shape, device, True, plan["seconds"])
                for precision, path in onnx_files.get(backbone, {}).items():
                    row[f"ort_{precision}"] = onnx_fps(path, shape, plan["seconds"], device)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def export_models(plan: dict, folder: Path) -> dict[str, dict[str, Path]]:
    from dehazekit.backbones import create_backbone
    from dehazekit.exporters import export_onnx

    files: dict[str, dict[str, Path]] = {}
    for backbone in plan["backbones"]:
        model = create_backbone(backbone).eval()
        files[backbone] = {
            "fp32": export_onnx(model, folder / f"{backbone}.onnx"),
            "fp16": export_onnx(model, folder / f"{backbone}.fp16.onnx", fp16=True),
        }
    return files


# --- pipeline -------------------------------------------------------------------------------------
def pipeline(model: Path, clip: Path, device: str, plan: dict) -> list[dict[str, Any]]:
    from dehazekit.runtimes import Dehazer, open_backend, open_sink, open_source, run_pipeline
    from dehazekit.runtimes.bench import model_only_fps

    rows = []
    for batch in plan["batches"]:
        with open_backend(model, device=device) as backend:
            source = open_source(str(clip), max_frames=plan["clip_frames"])
            width, height = source.info.size
            model_fps = model_only_fps(backend, width, height, batch, plan["seconds"])
            report = run_pipeline(
                source, open_sink(lambda item, frame: None, source), Dehazer(backend, batch=batch)
            )
            rows.append(
                {
                    "clip": clip.name,
                    "batch": batch,
                    "backend": backend.describe(),
                    "model_fps": model_fps,
                    "e2e_fps": report.fps,
                    "ratio": report.fps / model_fps if model_fps else 0.0,
                }
            )
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"GPU: {results['machine'].get('gpu', 'none')} (driver {results['machine'].get('driver', '-')}), "
        f"torch {results['machine']['torch']}",
        "",
    ]
    adapt_rows = results.get("adapt")
    if isinstance(adapt_rows, list):
        lines += ["| backbone | precision | search ms/step | fine-tune ms/step |", "|---|---|---|---|"]
        lines += [
            f"| {r['backbone']} | {r['precision']} | {r['search_ms']:.0f} | {r['finetune_ms']:.0f} |"
            for r in adapt_rows
        ]
        lines.append("")
    inf_rows = results.get("inference")
    if isinstance(inf_rows, list) and inf_rows:
        keys = [k for k in ("torch_fp32", "torch_fp16", "ort_fp32", "ort_fp16") if k in inf_rows[0]]
        lines += [
            "| backbone | size | batch | " + " | ".join(f"{k} fps" for k in keys) + " |",
            "|---" * (3 + len(keys)) + "|",
        ]
        lines += [
            f"| {r['backbone']} | {r['size']} | {r['batch']} | "
            + " | ".join(f"{r[k]:.1f}" for k in keys)
            + " |"
            for r in inf_rows
        ]
        lines.append("")
    pipe_rows = results.get("pipeline")
    if isinstance(pipe_rows, list):
        lines += ["| clip | batch | model-only fps | end-to-end fps | ratio |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['clip']} | {r['batch']} | {r['model_fps']:.1f} | {r['e2e_fps']:.1f} | {r['ratio']:.2f} |"
            for r in pipe_rows
        ]
    errors = {k: v["error"] for k, v in results.items() if isinstance(v, dict) and "error" in v}
    lines += [f"- {k} failed: {v}" for k, v in errors.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device is here")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    parser.add_argument("--sections", default="adapt,inference,pipeline")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    device = "cuda" if torch.cuda.is_available() else "cpu"
    clip_arch = str(ROOT / "tests/data/tiny_clip.json") if args.smoke else "ViT-B-32"
    wanted = set(args.sections.split(","))
    results: dict[str, Any] = {"machine": machine(), "plan": {k: v for k, v in plan.items() if k != "sizes"}}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_files: dict[str, dict[str, Path]] = {}
        if "adapt" in wanted:
            section(results, "adapt", lambda: adapt_steps(plan, device, clip_arch))
        if wanted & {"inference", "pipeline"}:
            section(results, "export", lambda: onnx_files.update(export_models(plan, Path(tmp))) or "ok")
        if "inference" in wanted:
            section(results, "inference", lambda: inference(plan, device, onnx_files))
        clip = next((c for c in CLIP_CANDIDATES if c.is_file()), None)
        if "pipeline" in wanted and clip is not None and onnx_files:
            first = onnx_files[plan["backbones"][0]]["fp32"]
            section(results, "pipeline", lambda: pipeline(first, clip, device, plan))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
