"""Measure the bundled default model on real data; writes benchmarks/results/default_model.json.

    OMP_NUM_THREADS=1 python tools/eval_default_model.py [--model dehazekit/assets/default] [--max-side 768]

- FADE (and the other no-reference scores) before/after on every photo of ../shared/data/real_hazy.
- PSNR/SSIM before/after on ../shared/data/paired_real/ohaze (pairs NN_outdoor_hazy / NN_outdoor_GT).
Images are downscaled to --max-side (Lanczos) before dehazing and scoring.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from dehazekit.metrics.eval import EvalConfig, evaluate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--max-side", type=int, default=768)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "default_model.json")
    args = ap.parse_args()
    fade = SHARED / "metrics" / "fade"
    result = {"max_side": args.max_side}
    t0 = time.perf_counter()
    real = evaluate(EvalConfig(hazy=SHARED / "data" / "real_hazy", model=args.model, fade_params=fade,
                               max_side=args.max_side, out=Path(tempfile.mkdtemp()) / "real_hazy"))
    result["real_hazy"] = {"count": len(real.images), "mean": real.mean, "model": real.model}
    result["real_hazy"]["fade_dropped"] = sum(im["delta"]["fade"] < 0 for im in real.images)
    with tempfile.TemporaryDirectory() as tmp:
        hazy, gt = Path(tmp) / "hazy", Path(tmp) / "gt"
        hazy.mkdir(), gt.mkdir()
        for p in sorted((SHARED / "data" / "paired_real" / "ohaze").glob("*_outdoor_hazy.jpg")):
            key = p.name.replace("_hazy", "")
            (hazy / key).symlink_to(p)
            (gt / key).symlink_to(p.with_name(p.name.replace("_hazy", "_GT")))
        ohaze = evaluate(EvalConfig(hazy=hazy, clear=gt, model=args.model, fade_params=fade, max_side=args.max_side))
    result["ohaze"] = {"images": ohaze.images, "mean": ohaze.mean}
    result["wall_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, block in (("real_hazy", real.mean), ("ohaze", ohaze.mean)):
        print(name, {k: f"{v['before']:.3f} -> {v['after']:.3f}" for k, v in block.items()})
    print(f"{result['real_hazy']['fade_dropped']}/{len(real.images)} real photos: FADE dropped -> {args.out}")


if __name__ == "__main__":
    main()
