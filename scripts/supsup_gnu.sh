#!/usr/bin/env bash
# SupSup GNu (task given at train time, inferred at test time, labels unshared): learn one supermask
# per task in sequence over fixed weights, then infer each test image's task by superposing the masks.
# After each task listed in EVAL_AT the newest task is evaluated (adapt_results.csv); at the end every
# task is (results.csv, summary.json). Called by the supsup_gnu_*.sh scenario scripts.
#
# usage: scripts/supsup_gnu.sh <benchmark> <oneshot|binary> <g|h> [gpu id]
# environment: NUM_TASKS, EVAL_AT (task counts, e.g. "10 50"), EPOCHS (2), LR (1e-4), BATCH_SIZE (128),
#   OUTPUT_SIZE (100), REAL_NEURONS (10), INFER_BATCH (1), ARCH, SEED (1), DATA_ROOT, CKPT_ROOT, DEVICE
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $# -le 4 ]] || usage_error "usage: $0 <benchmark> <oneshot|binary> <g|h> [gpu id]"
BENCHMARK=$1
ADAPTOR=$2
OBJECTIVE=$3
select_gpu "${4:-0}"
require_commands "$PYTHON"
resolve_roots
load_benchmark "$BENCHMARK"
read -r -a EVAL_AT <<< "${EVAL_AT:-}"
for count in "${EVAL_AT[@]}"; do
  [[ $count =~ ^[1-9][0-9]{0,8}$ ]] || usage_error "EVAL_AT must list task counts (whole numbers from 1), got '$count'"
done
ROOT="$CKPT_ROOT/SupSup/$BENCHMARK/gnu_${ADAPTOR}_$OBJECTIVE/$ARCH"
MODEL="$ROOT/model"
lock_run_root "$ROOT"
COMMON=(--method supsup --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "${SEED:-1}"
        --device "${DEVICE:-auto}" --val_batch_size 500)
INFER=(--supsup_adaptor "$ADAPTOR" --supsup_objective "$OBJECTIVE" --supsup_infer_batch "${INFER_BATCH:-1}"
       --supsup_real_neurons "${REAL_NEURONS:-10}")

for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  load=()
  ((k > 1)) && load=(--load_folder "$MODEL")
  run_stage "task_$k" "$ROOT/.stages" "$ROOT/train.log" "0" \
    "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" \
    --supsup_masks threshold --supsup_optimizer rmsprop --supsup_weight_decay 0 --supsup_schedule constant \
    --supsup_output_size "${OUTPUT_SIZE:-100}" --lr "${LR:-1e-4}" --epochs "${EPOCHS:-2}" \
    --batch_size "${BATCH_SIZE:-128}" --save_folder "$MODEL" --log_path "$ROOT/train.log"
  if [[ " ${EVAL_AT[*]} " == *" $k "* && $k -lt $NUM_TASKS ]]; then
    run_stage "eval_$k" "$ROOT/.stages" "$ROOT/train.log" "0" \
      "$PYTHON" main_normal.py --mode inference --dataset "$task" "${COMMON[@]}" "${INFER[@]}" --load_folder "$MODEL" \
      --supsup_eval last --supsup_results "$ROOT/adapt_results.csv" --log_path "$ROOT/train.log"
  fi
done

rm -f "$ROOT/results.csv"
run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" "${INFER[@]}" \
  --load_folder "$MODEL" --supsup_results "$ROOT/results.csv" --supsup_summary "$ROOT/summary.json" \
  --log_path "$ROOT/train.log"
say "results: $ROOT/results.csv (checkpoints: $ROOT/adapt_results.csv), summary: $ROOT/summary.json"
cat "$ROOT/results.csv"
