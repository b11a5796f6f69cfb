#!/usr/bin/env bash
# Piggyback on any benchmark: the first task trains the backbone, every later task learns a binary mask
# over the frozen backbone (plus its own batch-norm and head). Ends with every task evaluated on the last
# checkpoint (summary.json: accuracy right after learning and at the end, mask bits per backbone weight).
# Rerunning after an interruption skips the tasks that finished.
#
# usage: scripts/piggyback.sh <benchmark> [setting]
# environment: PRETRAINED (a torchvision state dict as the backbone, task "imagenet"), NUM_TASKS,
#   BACKBONE_EPOCHS (first task without PRETRAINED, 100), EPOCHS (later tasks, 30), LR (1e-2), LR_MASK (5e-4),
#   BATCH_SIZE (32), WEIGHT_DECAY, ARCH, SEED, DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT (names the run folder
#   instead of the benchmark's name), SPEED_FLAGS, GPUS (e.g. 0,1,2,3: every task's training under torchrun),
#   SEEDS (e.g. "1 2 3": one run each, spread over GPUS or SEED_WORKERS, then a table)
# The run folder is $CKPT_ROOT/Piggyback/<EXPERIMENT, default the benchmark's name>/<setting>_seed<SEED>/<arch>
# (a spec's name is its file name without .json); a rerun into it with other settings is refused (run_settings.json).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 && $# -le 2 ]] || usage_error "usage: $0 <benchmark> [setting]"
require_folder_name setting "${2:-default}"
for_each_seed "$@"
BENCHMARK=$1
require_commands jq "$PYTHON"
resolve_roots
load_benchmark "$BENCHMARK"
limit_cpu_threads
for name in ARCH NUM_TASKS SEED:1 BACKBONE_EPOCHS:100 EPOCHS:30 LR:1e-2 LR_MASK:5e-4 BATCH_SIZE:32 WEIGHT_DECAY:4e-5 \
  VAL_FRACTION: PRETRAINED: SPEED_FLAGS:; do
  setting "${name%%:*}" "${name#*:}"
done
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/Piggyback/$RUN_LABEL/${2:-default}_seed$SEED/$ARCH"
begin_run "$ROOT"
COMMON=(--method piggyback --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT"
        --batch_size "$BATCH_SIZE" --seed "$SEED" --device "${DEVICE:-auto}")
[[ -n $VAL_FRACTION ]] && COMMON+=(--val_fraction "$VAL_FRACTION")
read -r -a speed_flags <<< "$SPEED_FLAGS"
COMMON+=("${speed_flags[@]}")

start_stage_server
previous=""
for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  dir="$ROOT/$task"
  load=()
  epochs=$BACKBONE_EPOCHS
  if [[ -n $previous ]]; then
    load=(--load_folder "$previous")
    epochs=$EPOCHS
  elif [[ -n $PRETRAINED ]]; then  # the backbone is torchvision's: the first task only learns its mask
    load=(--pretrained "$PRETRAINED")
    epochs=$EPOCHS
  fi
  say "task $k/$NUM_TASKS: $task"
  run_stage finetune "$dir/.stages" "$dir/train.log" "0" \
    ranked_main --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" --epochs "$epochs" \
    --lr "$LR" --lr_mask "$LR_MASK" --weight_decay "$WEIGHT_DECAY" \
    --save_folder "$dir/model" --log_path "$dir/train.log"
  previous="$dir/model"
done

run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" --load_folder "$previous" \
  --piggyback_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log" >/dev/null
jq -r '(.tasks[] | "\(.task)\tlearned \(.accuracy_after_learning)\tfinal \(.accuracy_final)"),
  "average final \(.average_accuracy_final); each task after the first stores \(.mask_bits_per_backbone_weight) bits per backbone weight"' \
  "$ROOT/summary.json"
if [[ -z $PRETRAINED ]]; then  # a pretrained backbone's ImageNet task has no data here to fill its row
  run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints model --benchmark "$BENCHMARK" \
    --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
fi
write_run_card "$ROOT" piggyback "$SEED"
say "summary: $ROOT/summary.json"
