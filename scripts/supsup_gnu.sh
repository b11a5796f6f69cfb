#!/usr/bin/env bash
# SupSup GNu (task given at train time, inferred at test time, labels unshared): learn one supermask
# per task in sequence over fixed weights, then infer each test image's task by superposing the masks.
# Training does not depend on the adaptor or the objective: the masks are learned once per benchmark and
# architecture, in <run folder>/model, and each evaluation writes to a subfolder of its own,
# <run folder>/<adaptor>_<objective>/, so evaluating the same masks another way trains nothing. After each
# task listed in EVAL_AT a copy of the model is kept (<run folder>/after_task_<k>/) and the newest task is
# evaluated on it (adapt_results.csv); at the end every task is (results.csv, summary.json). Called by the
# supsup_gnu_*.sh scenario scripts.
#
# usage: scripts/supsup_gnu.sh <benchmark> <oneshot|binary|gt> <g|h> [gpu id]
# environment: NUM_TASKS, EVAL_AT (task counts, e.g. "10 50"), EPOCHS (2), LR (1e-4), BATCH_SIZE (128),
#   OUTPUT_SIZE (100), REAL_NEURONS (10), INFER_BATCH (1), ARCH, SEED (1), DATA_ROOT, CKPT_ROOT, DEVICE
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $# -le 4 ]] || usage_error "usage: $0 <benchmark> <oneshot|binary|gt> <g|h> [gpu id]"
BENCHMARK=$1
ADAPTOR=$2
OBJECTIVE=$3
case $ADAPTOR in
  oneshot | binary | gt) ;;
  *) usage_error "the adaptor must be oneshot, binary or gt, got '$ADAPTOR'" ;;
esac
[[ $OBJECTIVE == [gh] ]] || usage_error "the objective must be g or h, got '$OBJECTIVE'"
INFER_BATCH=${INFER_BATCH:-1}
REAL_NEURONS=${REAL_NEURONS:-10}
require_count INFER_BATCH "$INFER_BATCH" 999999999
require_count REAL_NEURONS "$REAL_NEURONS" 999999999
select_gpu "${4:-0}"
require_commands "$PYTHON"
resolve_roots
load_benchmark "$BENCHMARK"
limit_cpu_threads
read -r -a EVAL_AT <<< "${EVAL_AT:-}"
for count in "${EVAL_AT[@]}"; do
  [[ $count =~ ^[1-9][0-9]{0,8}$ ]] || usage_error "EVAL_AT must list task counts (whole numbers from 1), got '$count'"
done
ROOT="$CKPT_ROOT/SupSup/$BENCHMARK/gnu/$ARCH"
MODEL="$ROOT/model"
EVAL="$ROOT/${ADAPTOR}_$OBJECTIVE"
lock_run_root "$ROOT"
COMMON=(--method supsup --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "${SEED:-1}"
        --device "${DEVICE:-auto}" --val_batch_size 500)
INFER=(--supsup_adaptor "$ADAPTOR" --supsup_objective "$OBJECTIVE" --supsup_infer_batch "$INFER_BATCH"
       --supsup_real_neurons "$REAL_NEURONS")

# The evaluation folder's results hold for its inference settings: other settings redo its evaluations.
settings="infer_batch=$INFER_BATCH real_neurons=$REAL_NEURONS"
if [[ -f $EVAL/settings && $(<"$EVAL/settings") != "$settings" ]]; then
  say "inference settings changed ($settings): the evaluations in $EVAL are redone"
  rm -rf "$EVAL/.stages" "$EVAL/adapt"
fi
mkdir -p "$EVAL"
printf '%s\n' "$settings" > "$EVAL/settings"

# keep_model_after K: <run folder>/after_task_K, a copy of the model as task K left it, made right after
# task K trained; false, with a note, when the model went on before a copy was kept (EVAL_AT changed).
keep_model_after() {
  local copy="$ROOT/after_task_$1"
  [[ ! -d $copy ]] || return 0
  if stage_done "task_$(($1 + 1))" "$ROOT/.stages" "0"; then
    say "no copy of the model after task $1 was kept (EVAL_AT changed after training): its evaluation is skipped"
    return 1
  fi
  rm -rf "$copy.tmp"
  cp -R "$MODEL" "$copy.tmp"
  mv "$copy.tmp" "$copy"
}

for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  load=()
  ((k > 1)) && load=(--load_folder "$MODEL")
  run_stage "task_$k" "$ROOT/.stages" "$ROOT/train.log" "0" \
    "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" \
    --supsup_masks threshold --supsup_optimizer rmsprop --supsup_weight_decay 0 --supsup_schedule constant \
    --supsup_output_size "${OUTPUT_SIZE:-100}" --lr "${LR:-1e-4}" --epochs "${EPOCHS:-2}" \
    --batch_size "${BATCH_SIZE:-128}" --save_folder "$MODEL" --log_path "$ROOT/train.log"
  if [[ " ${EVAL_AT[*]} " == *" $k "* ]] && ((k < NUM_TASKS)) && keep_model_after "$k"; then
    part="$EVAL/adapt/after_task_$k.csv"  # the rows of this evaluation alone: a redone one starts afresh
    stage_done "adapt_$k" "$EVAL/.stages" "0" || rm -f "$part"
    run_stage "adapt_$k" "$EVAL/.stages" "$EVAL/eval.log" "0" \
      "$PYTHON" main_normal.py --mode inference --dataset "$task" "${COMMON[@]}" "${INFER[@]}" \
      --load_folder "$ROOT/after_task_$k" --supsup_eval last --supsup_results "$part" --log_path "$EVAL/eval.log"
  fi
done

# adapt_results.csv: the header and rows of each evaluation after a task in EVAL_AT, in task order, written
# whole (a temporary file renamed) so that a reader never sees half of it.
parts=()
for ((k = 1; k < NUM_TASKS; k++)); do
  if [[ " ${EVAL_AT[*]} " == *" $k "* && -f $EVAL/adapt/after_task_$k.csv ]]; then
    parts+=("$EVAL/adapt/after_task_$k.csv")
  fi
done
adapt="$EVAL/adapt_results.csv"
if ((${#parts[@]})); then
  {
    cat "${parts[0]}"
    for part in "${parts[@]:1}"; do
      tail -n +2 "$part"
    done
  } > "$adapt.tmp"
  mv "$adapt.tmp" "$adapt"
else
  rm -f "$adapt"
fi

rm -f "$EVAL/results.csv.tmp"
run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" "${INFER[@]}" \
  --load_folder "$MODEL" --supsup_results "$EVAL/results.csv.tmp" --supsup_summary "$EVAL/summary.json" \
  --log_path "$EVAL/eval.log"
mv "$EVAL/results.csv.tmp" "$EVAL/results.csv"
written="results: $EVAL/results.csv, summary: $EVAL/summary.json"
[[ ! -f $adapt ]] || written+=", after each task in EVAL_AT: $adapt"
say "$written"
cat "$EVAL/results.csv"
