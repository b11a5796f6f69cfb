#!/usr/bin/env bash
# SupSup GNu or GNs (task given at train time, inferred at test time; labels unshared in GNu, shared in GNs):
# learn one supermask per task in sequence over fixed weights, then infer each test image's task by
# superposing the masks. GNu counts an image right only when its task and class are both right; GNs
# classifies with the inferred task's mask and counts the class. Training does not depend on the adaptor or
# the objective: the masks are learned once per benchmark, scenario and architecture, in <run folder>/model,
# and each evaluation writes to a subfolder of its own, <run folder>/<adaptor>_<objective>/, so evaluating the
# same masks another way trains nothing. The run folder is
# $CKPT_ROOT/SupSup/<EXPERIMENT, default the benchmark's name>/<scenario>_seed<SEED>/<arch>;
# it records the training settings (run_settings.json), and a rerun with other ones is refused. After each task count k listed in EVAL_AT, and at the end, every task
# learned so far is evaluated on the model as it was after task k (adapt_results.csv, the reference's format:
# accuracy right after learning and now); at the end also results.csv and summary.json. Every stage runs in
# a child of one warm interpreter (start_stage_server). Called by the supsup_gnu_*.sh and supsup_gns_*.sh
# scenario scripts.
#
# usage: scripts/supsup_gnu.sh <benchmark> <oneshot|binary|gt> <g|h> [gpu id]
# environment: SCENARIO (gnu or gns), NUM_TASKS, EVAL_AT (task counts, e.g. "10 50"), EPOCHS (2), LR (1e-4),
#   BATCH_SIZE (128), OUTPUT_SIZE (100), REAL_NEURONS (10), INFER_BATCH (1), ARCH, SEED (1), DATA_ROOT,
#   CKPT_ROOT, DEVICE, EXPERIMENT, FAST_START (0: every stage starts its own interpreter); without a gpu id the
#   run goes where DEVICE says
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $# -le 4 ]] || usage_error "usage: $0 <benchmark> <oneshot|binary|gt> <g|h> [gpu id]"
one_seed_per_run
BENCHMARK=$1
ADAPTOR=$2
OBJECTIVE=$3
case $ADAPTOR in
  oneshot | binary | gt) ;;
  *) usage_error "the adaptor must be oneshot, binary or gt, got '$ADAPTOR'" ;;
esac
[[ $OBJECTIVE == [gh] ]] || usage_error "the objective must be g or h, got '$OBJECTIVE'"
SCENARIO=${SCENARIO:-gnu}
case $SCENARIO in
  gnu) LABELS=unshared ;;
  gns) LABELS=shared ;;
  *) usage_error "SCENARIO must be gnu or gns, got '$SCENARIO'" ;;
esac
INFER_BATCH=${INFER_BATCH:-1}
REAL_NEURONS=${REAL_NEURONS:-10}
require_count INFER_BATCH "$INFER_BATCH" 999999999
require_count REAL_NEURONS "$REAL_NEURONS" 999999999
select_gpu "${4:-}"
require_commands "$PYTHON"
read -r -a EVAL_AT <<< "${EVAL_AT:-}"
for count in "${EVAL_AT[@]}"; do
  [[ $count =~ ^[1-9][0-9]{0,8}$ ]] || usage_error "EVAL_AT must list task counts (whole numbers from 1), got '$count'"
done
limit_cpu_threads
launch_stage_server supsup  # it imports torch while the benchmark's tasks are listed
resolve_roots
load_benchmark "$BENCHMARK"
for name in ARCH NUM_TASKS SCENARIO SEED:1 EPOCHS:2 LR:1e-4 BATCH_SIZE:128 OUTPUT_SIZE:100 VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/SupSup/$RUN_LABEL/${SCENARIO}_seed$SEED/$ARCH"
MODEL="$ROOT/model"
EVAL="$ROOT/${ADAPTOR}_$OBJECTIVE"
begin_run "$ROOT"
COMMON=(--method supsup --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "$SEED"
        --device "${DEVICE:-auto}" --val_batch_size 500)
[[ -z $VAL_FRACTION ]] || COMMON+=(--val_fraction "$VAL_FRACTION")
INFER=(--supsup_adaptor "$ADAPTOR" --supsup_objective "$OBJECTIVE" --supsup_infer_batch "$INFER_BATCH"
       --supsup_real_neurons "$REAL_NEURONS" --supsup_labels "$LABELS")

# The evaluation folder's results hold for its inference settings: other settings redo its evaluations.
settings="infer_batch=$INFER_BATCH real_neurons=$REAL_NEURONS"
if [[ -f $EVAL/settings && $(<"$EVAL/settings") != "$settings" ]]; then
  say "inference settings changed ($settings): the evaluations in $EVAL are redone"
  rm -rf "$EVAL/.stages" "$EVAL/adapt"
fi
mkdir -p "$EVAL"
printf '%s\n' "$settings" > "$EVAL/settings"

await_stage_server
for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  load=()
  ((k > 1)) && load=(--load_folder "$MODEL")
  run_stage "task_$k" "$ROOT/.stages" "$ROOT/train.log" "0" \
    "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" \
    --supsup_masks threshold --supsup_optimizer rmsprop --supsup_weight_decay 0 --supsup_schedule constant \
    --supsup_output_size "$OUTPUT_SIZE" --lr "$LR" --epochs "$EPOCHS" \
    --batch_size "$BATCH_SIZE" --save_folder "$MODEL" --log_path "$ROOT/train.log"
  if [[ " ${EVAL_AT[*]} " == *" $k "* ]] && ((k < NUM_TASKS)); then
    # the model as task k left it (--supsup_tasks: later tasks' masks left out, so a rerun gives the same rows)
    run_stage "adapt_$k" "$EVAL/.stages" "$EVAL/eval.log" "0" \
      "$PYTHON" main_normal.py --mode inference --dataset "$task" "${COMMON[@]}" "${INFER[@]}" \
      --load_folder "$MODEL" --supsup_tasks "$k" --supsup_adapt_results "$EVAL/adapt/after_task_$k.csv" \
      --log_path "$EVAL/eval.log"
  fi
done

rm -f "$EVAL/results.csv.tmp"
run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" "${INFER[@]}" \
  --load_folder "$MODEL" --supsup_results "$EVAL/results.csv.tmp" --supsup_summary "$EVAL/summary.json" \
  --supsup_adapt_results "$EVAL/adapt/after_task_$NUM_TASKS.csv" --log_path "$EVAL/eval.log"
mv "$EVAL/results.csv.tmp" "$EVAL/results.csv"

# adapt_results.csv: the header, then the rows of each evaluation (after each task count in EVAL_AT and at the
# end) in task-count order, written whole (a temporary file renamed) so that a reader never sees half of it.
parts=()
for ((k = 1; k <= NUM_TASKS; k++)); do
  if [[ " ${EVAL_AT[*]} $NUM_TASKS " == *" $k "* && -f $EVAL/adapt/after_task_$k.csv ]]; then
    parts+=("$EVAL/adapt/after_task_$k.csv")
  fi
done
adapt="$EVAL/adapt_results.csv"
{
  cat "${parts[0]}"
  for part in "${parts[@]:1}"; do
    tail -n +2 "$part"
  done
} > "$adapt.tmp"
mv "$adapt.tmp" "$adapt"
say "results: $EVAL/results.csv, summary: $EVAL/summary.json, every task after each of ${EVAL_AT[*]} $NUM_TASKS tasks: $adapt"
cat "$EVAL/results.csv"
