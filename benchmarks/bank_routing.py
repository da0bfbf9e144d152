"""Run the real fog clips through an adapter bank with --route auto; report which adapter ran where.

    python benchmarks/bank_routing.py --bank BANK_DIR --frames 45 --max-side 320 \
        --fade-params ../shared/metrics/fade --videos ../shared/data/video

Per clip: the router's segments (frames, adapter, mean haze score) and, on every 5th frame, FADE of
the routed output beside FADE of the base model alone (same bank, adapter "base").
Writes benchmarks/results/bank_routing.json.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from dehazekit.metrics.video_eval import _frames
from dehazekit.runtimes import Dehazer
from dehazekit.runtimes.routing import RoutedDehazer, Router

RESULTS = Path(__file__).parent / "results"
FADE_EVERY = 5


def run_clip(bank: Path, clip: Path, frames: int, max_side: int, fade_params) -> dict:
    from dehazekit.metrics.fade import fade

    dehazer = Dehazer(bank)
    router = Router(dehazer.backend.bank.signatures())
    routed = RoutedDehazer(dehazer, router)
    fades: dict[str, list[float]] = {"routed": [], "base": []}
    for index, frame in enumerate(_frames(clip, frames, max_side)):
        out = routed(frame)
        if fade_params is not None and index % FADE_EVERY == 0:
            dehazer.use("base")
            fades["base"].append(fade(dehazer(frame), fade_params))
            fades["routed"].append(fade(out, fade_params))
    dehazer.close()
    return {
        "clip": clip.name,
        "segments": router.report(),
        "fade_every_5th": {k: float(np.mean(v)) for k, v in fades.items() if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bank", type=Path, required=True)
    parser.add_argument("--videos", type=Path, default=Path("../shared/data/video"))
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--fade-params", type=Path, default=None)
    parser.add_argument("--name", default="bank_routing", help="results/<name>.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    params = None
    if args.fade_params:
        from dehazekit.metrics.fade import FadeParams

        params = FadeParams.load(args.fade_params)
    rows = [
        run_clip(args.bank, clip, args.frames, args.max_side, params)
        for clip in sorted(args.videos.glob("*.mp4"))
    ]
    manifest = json.loads((args.bank / "bank.json").read_text())
    out = {
        "command": f"python benchmarks/bank_routing.py --bank BANK --frames {args.frames} "
        f"--max-side {args.max_side}{' --fade-params DIR' if args.fade_params else ''} --name {args.name}",
        "signatures": {n: e.get("haze") for n, e in manifest["adapters"].items()},
        "blocks": {n: e["blocks"] for n, e in manifest["adapters"].items()},
        "clips": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
