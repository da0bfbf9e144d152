#!/usr/bin/env bash
# Quickstart: adapt the bundled default model (gunet-t) to the sample hazy photos, export it to a
# verified ONNX, and dehaze the sample video with it. Measured: 50 s on an idle 2-core CPU.
#
#   bash samples/quickstart.sh            # outputs in runs/quickstart/
#
# adapt runs offline's own schedule (16 search + 48 fine-tune steps on 96 px crops, guard on, merged at
# strength 0.5): the setting measured on benchmarks/adapt_gt.py, not a shortened demo. With CLIP
# weights, --objective h2c gets BiLaLoRA's 300 + 600 steps on 224 px crops instead.
set -euo pipefail

cd "$(dirname "$0")/.."  # the sample paths are relative to the repository root
DEHAZEKIT="${DEHAZEKIT:-dehazekit}"
OUT=runs/quickstart

step() {  # step NAME COMMAND...: run one command and report how long it took
    local name="$1" start=$SECONDS
    shift
    echo "==> $name: $*"
    "$@"
    echo "==> $name took $((SECONDS - start)) s"
}

step adapt "$DEHAZEKIT" adapt --images samples/images --backbone gunet-t --weights synthetic \
    --objective offline --out "$OUT"
step export "$DEHAZEKIT" export "$OUT"
step run "$DEHAZEKIT" run samples/video/hazy_rocket.mp4 --model "$OUT/model.onnx" --out "$OUT/dehazed.mp4"

cat <<EOF

Done in $SECONDS s. Outputs:
  $OUT/model.safetensors, model.json      merged adapted model
  $OUT/adapter.json, adapter.safetensors  the LoRA adapter alone
  $OUT/report/before_after.png            hazy / base model / adapted, on sample crops
  $OUT/model.onnx, model.parity.json      ONNX export and its parity report vs PyTorch
  $OUT/dehazed.mp4                        the dehazed sample video
EOF
