#!/usr/bin/env bash
# The edge/camera install, checked from nothing: a fresh venv gets `dehazekit[cpu]` (the base runtime plus
# onnxruntime; a regular, non-editable install, so the wheel's layout is what is tested) and must dehaze an
# image and a video through the ONNX model with torch, open_clip, onnx and polygraphy absent.
#
#   bash tools/edge_install.sh            # needs an environment with dehazekit[export] to make the ONNX
#
# Prints one summary line (install time, venv size) and exits non-zero on any failure.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"  # never import the source tree by accident: the installed package is under test

python - "$work/default.onnx" <<'PY'
import sys

from dehazekit.exporters import export_onnx
from dehazekit.models import default_model_path

export_onnx(default_model_path(), sys.argv[1])
PY

python3 -m venv "$work/edge"
start=$SECONDS
"$work/edge/bin/python" -m pip install -q --no-cache-dir "$repo[cpu]" 2>&1 | grep -v -i "warn" || true
install_s=$((SECONDS - start))
"$work/edge/bin/python" -c "import dehazekit.runtimes" # the install itself must have worked

"$work/edge/bin/python" - <<'PY'
import importlib.util
import sys

heavy = [name for name in ("torch", "open_clip", "onnx", "polygraphy", "scipy") if importlib.util.find_spec(name)]
top_level = sorted({p.name for p in __import__("pathlib").Path(importlib.util.find_spec("dehazekit").origin).parents[1].glob("*")
                    if p.name in ("runtimes", "exporters")})
if heavy or top_level:
    sys.exit(f"edge install is not light: heavy packages {heavy}, stray top-level packages {top_level}")
PY

"$work/edge/bin/dehazekit" run "$repo/samples/images/hazy_chelsea.jpg" --model default.onnx --out chelsea.png
"$work/edge/bin/dehazekit" run "$repo/samples/video/hazy_rocket.mp4" --model default.onnx --out rocket.mp4
test -s chelsea.png && test -s rocket.mp4
size_mb=$(du -sm "$work/edge" | cut -f1)
echo "edge install (dehazekit[cpu], no torch): installed in ${install_s} s, venv ${size_mb} MB; image and video dehazed via ONNX"
