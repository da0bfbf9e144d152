#!/usr/bin/env bash
# The lent-GPU measurements of issues 17 and 13, in two calls of the `device` tool. Every stage has its
# own time limit and leaves its results in OUT even when another one fails.
#
# Part 1 (train): retrain the bundled default model at GPU scale (three candidates, from scratch, same
#   wall time), judge them on ground truth with the rule fixed beforehand (default_model_pick.py); beside
#   that, benchmarks/ablation.py at a GPU size on two synthetic domains, and the adaptation benchmark with
#   the adapt command's own defaults on O-HAZE leave-one-out (checks the CUDA path, times one task).
# Part 2 (adapt): benchmarks/adapt_gt.py (lora:offline, the adapt defaults) on every task, for MODEL (default: the bundled one).
#
#   bash benchmarks/default_model_gpu.sh train OUT [END_SECONDS] [TRAIN_SECONDS]
#   bash benchmarks/default_model_gpu.sh adapt OUT [END_SECONDS] [MODEL_DIR] [JOBS]
# CPU dry run (minutes): DRY=1 bash benchmarks/default_model_gpu.sh train /tmp/dry 400 70
set -u
PART=${1:?usage: default_model_gpu.sh train|adapt OUT [END_SECONDS] ...}
OUT=${2:?usage: default_model_gpu.sh train|adapt OUT [END_SECONDS] ...}
END_S=${3:-300}
mkdir -p "$OUT/runs" "$OUT/eval" "$OUT/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*"; }
left() { echo $((END_S - ($(date +%s) - T0))); }
DRY=${DRY:-0}
log "$PART on $(python3 -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/logs/gpu.txt" 2>&1

adapt_gt() {  # NAME JOBS [adapt_gt args...]: the product-settings benchmark until END_S
  local name=$1 jobs=$2
  local dry=()
  [ "$DRY" = 1 ] && dry=(--only ohaze:eval35 --set search=2 finetune=3 size=64) && jobs=1
  timeout $(($(left) - 5)) python3 benchmarks/adapt_gt.py --methods lora:offline --no-fade --jobs "$jobs" "${@:3}" "${dry[@]}" \
    --out "$OUT/adapt_gt_product_$name" > "$OUT/logs/adapt_$name.log" 2>&1
}

ablation() {  # issue 13's layer-placement ablation at a GPU size (supervised L1, one synthetic domain)
  local args=(--device cuda --side 256 --size 128 --batch 4 --search 60 --finetune 180 --curve-every 20)
  [ "$DRY" = 1 ] && args=(--side 64 --size 32 --search 2 --finetune 4 --random-draws 1 --curve-every 2 \
    --n-adapt 2 --n-eval 1)
  timeout $(($(left) - 5)) python3 benchmarks/ablation.py "${args[@]}" --lr-full 2e-5 --domain "$1" \
    --out "$OUT/ablation_gpu_$1.json" > "$OUT/logs/ablation_$1.log" 2>&1
}

# The bundled model's recipe (plain L1, homogeneous+realistic) at GPU scale, and the two changes the CPU
# recalibrations pointed at: the bluish linear-light 'outdoor' airlight (colour cast) and quarter turns
# (the vertical prior behind sky streaks). All from scratch, same seed, same budget.
declare -A VARIANTS=(
  [v1_l1]="--haze-preset homogeneous+realistic"
  [v2_outdoor_rotate]="--haze-preset homogeneous+realistic+outdoor --rotate"
  [v3_outdoor]="--haze-preset homogeneous+realistic+outdoor"
)

train_and_pick() {  # TRAIN_SECONDS
  local batch=16 crop=256 workers=3 threads=3 pids=() eval_args=()
  [ "$DRY" = 1 ] && batch=2 crop=64 workers=1 threads=1 eval_args=(--max-side 128)
  for name in "${!VARIANTS[@]}"; do
    # shellcheck disable=SC2086
    timeout $(($1 + 90)) python3 -m dehazekit pretrain --clear ../shared/data/clear --backbone gunet-t \
      ${VARIANTS[$name]} --crop $crop --batch-size $batch --lr 1e-3 --max-side 512 --steps 1000000 \
      --time-budget "$1s" --val-every 500 --ckpt-every 1000000 --val-count 24 --val-size 128 \
      --workers $workers --no-progress --out "$OUT/runs/$name" > "$OUT/logs/pretrain_$name.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  log "training done: $(ls "$OUT"/runs/*/model.safetensors 2>/dev/null | wc -l) models"
  pids=()
  for name in bundled "${!VARIANTS[@]}"; do
    # the candidates are synthetic-only retrains: they compete with `synthetic`, the bundled model when
    # this rule was registered (benchmarks/default_model.md, "Two bundled models")
    local model=(--model dehazekit/assets/synthetic)
    [ "$name" != bundled ] && model=(--model "$OUT/runs/$name")
    [ "$name" != bundled ] && [ ! -f "$OUT/runs/$name/model.safetensors" ] && continue
    OMP_NUM_THREADS=$threads timeout 200 python3 tools/eval_default_model.py --sets probe,ohaze,crops,synth \
      --synth-presets homogeneous,realistic,outdoor --out "$OUT/eval/$name.json" "${model[@]}" \
      "${eval_args[@]}" > "$OUT/logs/eval_$name.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  python3 benchmarks/default_model_pick.py --bundled "$OUT/eval/bundled.json" \
    --candidates "$OUT"/eval/v*.json --out "$OUT/eval/pick.json" > "$OUT/logs/pick.log" 2>&1
  log "picked: $(python3 -c "import json; print(json.load(open('$OUT/eval/pick.json'))['picked'])" 2>&1)"
}

case "$PART" in
  train)
    adapt_gt bundled_ohaze 2 --only ohaze:eval &
    ablation dense &
    ablation patchy &
    train_and_pick "${4:-200}"
    wait
    ;;
  adapt)
    MODEL=${4:-}
    if [ -n "$MODEL" ]; then adapt_gt "$(basename "$MODEL")" "${5:-16}" --model "$MODEL"
    else adapt_gt bundled "${5:-16}"; fi
    ;;
  *) echo "unknown part: $PART (train or adapt)"; exit 2 ;;
esac
log "all done"
for f in "$OUT"/logs/*.log; do echo "== $f"; tail -n 3 "$f"; done
