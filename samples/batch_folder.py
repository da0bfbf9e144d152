"""Dehaze every image in a folder with the runtimes package alone (no torch needed for .onnx models).

    python samples/batch_folder.py hazy_photos/ clear_photos/ --model model.onnx --batch 4

Unreadable images are skipped and listed at the end; each output is written atomically.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dehazekit.runtimes import Dehazer, open_sink, open_source, run_pipeline
from dehazekit.runtimes.errors import DehazeKitError

log = logging.getLogger("batch_folder")


def dehaze_folder(src: str, dst: str, model: str, batch: int = 1, tile: int | None = None):
    """Run the threaded pipeline folder -> folder and return its RunReport."""
    with Dehazer(model, batch=batch, tile=tile) as dehazer:
        source = open_source(src)
        return run_pipeline(source, open_sink(dst, source), dehazer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", help="folder (or glob) of hazy images")
    parser.add_argument("dst", help="output folder")
    parser.add_argument("--model", required=True, help=".onnx, .engine or model folder")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tile", type=int, default=None, help="tile large images (e.g. 512)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = dehaze_folder(args.src, args.dst, args.model, args.batch, args.tile)
    except DehazeKitError as exc:
        log.error("error: %s", exc)
        return 2
    log.info(
        "dehazed %d images in %.2f s (%.1f images/s) with %s",
        report.frames,
        report.seconds,
        report.fps,
        report.backend.get("backend"),
    )
    for skipped in report.skipped:
        log.warning("skipped %s: %s", skipped.item, skipped.reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
