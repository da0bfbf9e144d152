#!/usr/bin/env bash
# One lent GPU, one call (`device` tool): retrain the bundled default model at GPU scale, judge the
# candidates on ground truth with the rule fixed beforehand (benchmarks/default_model_pick.py), and run
# the adaptation benchmark with the adapt command's own defaults (benchmarks/adapt_gt.py --product) on
# the bundled model and on the picked candidate; beside them, benchmarks/ablation.py at a GPU size. Every stage has its own time limit and leaves its
# results in OUT even when a later one fails.
#
#   bash benchmarks/default_model_gpu.sh OUT [TRAIN_SECONDS] [ADAPT_END_SECONDS]
# CPU dry run (minutes): DRY=1 bash benchmarks/default_model_gpu.sh /tmp/dry 20 200
set -u
OUT=${1:?usage: default_model_gpu.sh OUT [TRAIN_SECONDS] [ADAPT_END_SECONDS]}
TRAIN_S=${2:-240}
END_S=${3:-540}
mkdir -p "$OUT/runs" "$OUT/eval" "$OUT/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*"; }
left() { echo $((END_S - ($(date +%s) - T0))); }

CLEAR=../shared/data/clear
BATCH=16 CROP=256 WORKERS=3 JOBS_BUNDLED=4 JOBS_PICKED=10 EVAL_THREADS=3
if [ "${DRY:-0}" = 1 ]; then BATCH=2 CROP=64 WORKERS=1 JOBS_BUNDLED=1 JOBS_PICKED=1 EVAL_THREADS=1; fi
ONLY=() EVAL_ARGS=()
if [ "${DRY:-0}" = 1 ]; then
  ONLY=(--only ohaze:eval35 --set search=2 finetune=3 size=64)
  EVAL_ARGS=(--max-side 128)
fi

# The bundled model's recipe (plain L1, homogeneous+realistic) at GPU scale, and the two changes the
# CPU recalibrations pointed at: the bluish linear-light 'outdoor' airlight (colour cast) and quarter
# turns (the vertical prior behind sky streaks). All from scratch, same seed, same budget.
declare -A VARIANTS=(
  [v1_l1]="--haze-preset homogeneous+realistic"
  [v2_outdoor_rotate]="--haze-preset homogeneous+realistic+outdoor --rotate"
  [v3_outdoor]="--haze-preset homogeneous+realistic+outdoor"
)
log "start on $(python3 -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/logs/gpu.txt" 2>&1

# Stage 1: the adaptation benchmark on the bundled model starts now and runs beside the training.
timeout $(($(left) - 5)) python3 benchmarks/adapt_gt.py --product --no-fade --jobs $JOBS_BUNDLED "${ONLY[@]}" \
  --out "$OUT/adapt_gt_product_bundled" > "$OUT/logs/adapt_bundled.log" 2>&1 &
ADAPT_BUNDLED=$!

# Stage 1b: issue 13's layer-placement ablation at a GPU size (supervised L1 on two synthetic domains).
ABL=(--device cuda --side 256 --size 128 --batch 4 --search 60 --finetune 180 --curve-every 20 --lr-full 2e-5)
if [ "${DRY:-0}" = 1 ]; then
  ABL=(--side 64 --size 32 --search 2 --finetune 4 --random-draws 1 --curve-every 2 --n-adapt 2 --n-eval 1)
fi
for domain in dense patchy; do
  timeout $(($(left) - 5)) python3 benchmarks/ablation.py "${ABL[@]}" --domain $domain \
    --out "$OUT/ablation_gpu_$domain.json" > "$OUT/logs/ablation_$domain.log" 2>&1 &
done

# Stage 2: the candidates, trained in parallel for TRAIN_S seconds each.
PIDS=()
for name in "${!VARIANTS[@]}"; do
  # shellcheck disable=SC2086
  timeout $((TRAIN_S + 90)) python3 -m dehazekit pretrain --clear "$CLEAR" --backbone gunet-t ${VARIANTS[$name]} \
    --crop $CROP --batch-size $BATCH --lr 1e-3 --max-side 512 --steps 1000000 --time-budget "${TRAIN_S}s" \
    --val-every 500 --ckpt-every 1000000 --val-count 24 --val-size 128 --workers $WORKERS --no-progress \
    --out "$OUT/runs/$name" > "$OUT/logs/pretrain_$name.log" 2>&1 &
  PIDS+=($!)
done
wait "${PIDS[@]}"
log "training done: $(ls "$OUT"/runs/*/model.safetensors 2>/dev/null | wc -l) models"

# Stage 3: every model on the ground-truth sets, in parallel (bundled included: same data, same run).
eval_one() {
  OMP_NUM_THREADS=$EVAL_THREADS timeout 240 python3 tools/eval_default_model.py --sets probe,ohaze,crops,synth \
    --synth-presets homogeneous,realistic,outdoor --out "$OUT/eval/$1.json" "${@:2}" > "$OUT/logs/eval_$1.log" 2>&1
}
PIDS=()
eval_one bundled "${EVAL_ARGS[@]}" &
PIDS+=($!)
for name in "${!VARIANTS[@]}"; do
  if [ -f "$OUT/runs/$name/model.safetensors" ]; then
    eval_one "$name" --model "$OUT/runs/$name" "${EVAL_ARGS[@]}" &
    PIDS+=($!)
  fi
done
wait "${PIDS[@]}"
log "evaluation done"
python3 benchmarks/default_model_pick.py --bundled "$OUT/eval/bundled.json" \
  --candidates "$OUT"/eval/v*.json --out "$OUT/eval/pick.json" > "$OUT/logs/pick.log" 2>&1
PICKED=$(python3 -c "import json; print(json.load(open('$OUT/eval/pick.json'))['picked'] or '')" 2>/dev/null)
log "picked: ${PICKED:-none}"

# Stage 4: the adaptation benchmark on the picked candidate, until END_S.
if [ -n "$PICKED" ] && [ "$(left)" -gt 30 ]; then
  timeout $(($(left) - 5)) python3 benchmarks/adapt_gt.py --product --no-fade --jobs $JOBS_PICKED "${ONLY[@]}" \
    --model "$OUT/runs/$PICKED" --out "$OUT/adapt_gt_product_$PICKED" > "$OUT/logs/adapt_picked.log" 2>&1
fi
wait
log "all done"
for f in "$OUT"/logs/*.log; do echo "== $f"; tail -n 4 "$f"; done
