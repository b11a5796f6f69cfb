#!/usr/bin/env bash
# WSN (Winning SubNetworks) on split_digits (default) or permuted_digits: every task learns its weights and a
# top-c binary mask over the shared ones, the weights an earlier task's mask uses stay frozen, so old tasks never
# change. Ends with every task evaluated on the last checkpoint (summary.json), the accuracy matrix, metrics and
# storage (tools.report --checkpoints wsn: metrics.json, accuracy_matrix.png) and the run card.
# Rerunning after an interruption skips the tasks that finished.
#
# usage: scripts/wsn.sh [benchmark] [setting]
# environment: CAPACITY (c, 0.5), EPOCHS (10), LR (1e-3, Adam), LR_PATIENCE (6), LR_FACTOR (2), LR_MIN (1e-6),
#   BATCH_SIZE (32), VAL_FRACTION, NUM_TASKS, ARCH, SEED, DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT (names the run
#   folder instead of the benchmark), SEEDS (e.g. "1 2 3": one run each, spread over SEED_WORKERS, then a table)
# The run folder is $CKPT_ROOT/WSN/<EXPERIMENT, default the benchmark's name>/<setting>_seed<SEED>/<arch>; a rerun into it
# with other settings is refused (run_settings.json).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 2 ]] || usage_error "usage: $0 [benchmark] [setting]"
require_folder_name setting "${2:-default}"
for_each_seed "$@"
begin_method_run WSN "${1:-split_digits}" "${2:-default}" CAPACITY:0.5 EPOCHS:10 LR:1e-3 LR_PATIENCE:6 LR_FACTOR:2 \
  LR_MIN:1e-6 BATCH_SIZE:32 VAL_FRACTION:
COMMON=(--method wsn --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "$SEED"
        --device "${DEVICE:-auto}")
[[ -n $VAL_FRACTION ]] && COMMON+=(--val_fraction "$VAL_FRACTION")

launch_stage_server wsn  # one warm interpreter forks every stage
await_stage_server
previous=""
for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  dir="$ROOT/$task"
  load=()
  [[ -z $previous ]] || load=(--load_folder "$previous")
  say "task $k/$NUM_TASKS: $task"
  run_stage finetune "$dir/.stages" "$dir/train.log" "0" \
    "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" --epochs "$EPOCHS" \
    --batch_size "$BATCH_SIZE" --lr "$LR" --wsn_capacity "$CAPACITY" --wsn_lr_patience "$LR_PATIENCE" \
    --wsn_lr_factor "$LR_FACTOR" --wsn_lr_min "$LR_MIN" --save_folder "$dir/model" --log_path "$dir/train.log"
  previous="$dir/model"
done

run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" \
  --load_folder "$previous" --wsn_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log" >/dev/null
jq -r '(.tasks[] | "\(.task)\tlearned \(.accuracy_after_learning)\tfinal \(.accuracy_final)"),
  "average final \(.average_accuracy_final); \(.used_fraction * 100 | round)% of the weights used"' "$ROOT/summary.json"
run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints wsn --benchmark "$BENCHMARK" \
  --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
write_run_card "$ROOT" wsn "$SEED"
say "summary: $ROOT/summary.json"
