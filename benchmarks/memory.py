"""Peak memory of `dehazekit run` on an 8.5 MP photo: whole frame vs the memory budget's automatic tiles.

The photo is a real hazy photo from ../shared/data/real_hazy upscaled (Lanczos) to 3568x2376 (8.48 MP), the
size of the issue's report (8.6 GB peak on the torch path). Each setting runs `dehazekit run` in a fresh
process with the bundled default model (its cached verified ONNX) and records the process's peak RSS
(``wait4`` rusage) and wall time.

    OMP_NUM_THREADS=1 python benchmarks/memory.py        # -> benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dehazekit.runtimes.io_utils import atomic_write_text

PHOTOS = REPO.parent / "shared" / "data" / "real_hazy"
SIZE = (3568, 2376)


def make_photo(path: Path) -> Path:
    from PIL import Image

    source = min(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    with Image.open(source) as img:
        img.convert("RGB").resize(SIZE, Image.Resampling.LANCZOS).save(path, quality=92)
    return path


def measure(photo: Path, out: Path, max_memory: str) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "dehazekit.cli.main",
        "run",
        str(photo),
        "--out",
        str(out),
        "--max-memory",
        max_memory,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, COLUMNS="200")
    )
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    tiling = next(
        (line.split("tiling", 1)[1].strip() for line in output.splitlines() if " tiling " in line), ""
    )
    return {
        "max_memory": max_memory,
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2),
        "tiling": tiling,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", default="off,auto,2G", help="--max-memory values to measure")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photo(Path(tmp) / "photo_8.5mp.jpg")
        for setting in args.settings.split(","):
            rows.append(measure(photo, Path(tmp) / f"out_{setting}.jpg", setting))
            print(rows[-1], flush=True)
    result = {
        "photo": f"{SIZE[0]}x{SIZE[1]} ({SIZE[0] * SIZE[1] / 1e6:.2f} MP)",
        "model": "bundled gunet-t (ONNX)",
        "rows": rows,
        "machine": platform.platform(),
        "load_average": os.getloadavg(),
        "command": " ".join(["python", *sys.argv]),
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
