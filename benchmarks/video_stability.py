"""Flicker and FADE with and without the stabiliser on the real fog clips; frame strips for ghosting.

    python benchmarks/video_stability.py --model model.onnx --frames 40 --max-side 320 \
        --fade-params ../shared/metrics/fade --videos ../shared/data/video

Writes benchmarks/results/video_stability.json and benchmarks/results/strips/<clip>.png: rows of
(input | raw output | stabilised | 8x |stabilised - raw|) at three frames, to look for ghosts.
The model runs once per frame; raw and stabilised are scored on the same outputs.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from dehazekit.metrics.video_eval import VideoEvalConfig, evaluate_video
from dehazekit.runtimes.stabilize import StabilizerConfig

RESULTS = Path(__file__).parent / "results"
log = logging.getLogger("video_stability")
STRIP_FRAMES = (5, 20, 35)
# A setting that smooths many more cells (every cell moving less than 10% counts as near-static):
# what more flicker reduction costs in FADE.
STRONG = StabilizerConfig(alpha=0.95, cells=60, motion=0.1)


def strip_png(rows: list[list[np.ndarray]], height: int = 120) -> bytes:
    from PIL import Image

    tiles = []
    for inp, raw, stab, *_ in rows:
        diff = np.clip(np.abs(stab.astype(np.int16) - raw.astype(np.int16)) * 8, 0, 255).astype(np.uint8)
        tiles.append([Image.fromarray(t) for t in (inp, raw, stab, diff)])
    w = round(tiles[0][0].width * height / tiles[0][0].height)
    sheet = Image.new("RGB", (4 * (w + 2), len(tiles) * (height + 2)), (255, 255, 255))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(tile.resize((w, height)), (c * (w + 2), r * (height + 2)))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--videos", type=Path, default=Path("../shared/data/video"))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--fade-params", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    (RESULTS / "strips").mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in sorted(args.videos.glob("*.mp4")):
        start = time.perf_counter()
        cfg = VideoEvalConfig(
            video=clip,
            model=args.model,
            max_frames=args.frames,
            max_side=args.max_side,
            stabilize=True,
            fade_params=args.fade_params,
            keep_frames=STRIP_FRAMES,
            variants={"strong": STRONG},
        )
        res = evaluate_video(cfg)
        kept = [res.kept[i] for i in STRIP_FRAMES if i in res.kept]
        (RESULTS / "strips" / f"{clip.stem}.png").write_bytes(strip_png(kept))
        row = {**res.to_dict(), "wall_s": time.perf_counter() - start}
        row["stabilizer_cost"] = res.seconds["stabilizer"] / max(res.seconds["model"], 1e-9)
        rows.append(row)
        raw, stab = res.flicker["raw"], res.flicker["stabilized"]
        log.info(
            "%s: flicker %.3f -> %.3f, FADE %s, cost %.2f%%",
            clip.name,
            raw["ratio"],
            stab["ratio"],
            res.fade,
            100 * row["stabilizer_cost"],
        )
    out = {
        "command": "python benchmarks/video_stability.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "machine": platform.processor() or platform.machine(),
        "clips": rows,
    }
    (RESULTS / "video_stability.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
