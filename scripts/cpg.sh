#!/usr/bin/env bash
# CPG on any benchmark: for each task, finetune (growing the width on exit 2), gradual pruning
# 0.1 ... 0.9, 0.95 (stopping on exit 6), choose the pruning ratio, retrain the piggymask and keep
# it if better. Rerunning after an interruption skips the stages that finished.
# METHOD=packnet runs PackNet on the same machinery: no picking, no growth, no retraining, and the
# sparsest recorded model is kept (set SPARSITY_STEPS="0.6" PRUNING_INTERVAL=0 for one-shot pruning).
#
# usage: scripts/cpg.sh <benchmark> [data_root] <setting> <max_width_multiplier>
#   the data root is DATA_ROOT (default data/) as for every driver; the argument, when given, is the same
#   (an argument and a DATA_ROOT naming different folders stop with exit 64)
# environment: PRETRAINED (a torchvision state dict: task 1 "imagenet"), LRS (finetune learning rate per task),
#   VAL_FRACTION (share of each task's training images held out to choose on; default the benchmark's, 0.1;
#   0 chooses on the test images, as the reference), TRAIN_ACCURACY_GATE (training accuracy finetune and each
#   prune stage must exceed, 0.95; a task that stays below it is not pruned, keeps every weight, and the report
#   warns), GPUS (e.g. 0,1,2,3: each stage under torchrun), NUM_TASKS, TOTAL_TASKS, FINETUNE_EPOCHS, PRUNE_EPOCHS, RETRAIN_EPOCHS, CKPT_ROOT, GOALS,
#   EXPERIMENT, ARCH, BATCH_SIZE, LR, LR_MASK, PRUNE_LR, RETRAIN_LR, RETRAIN_LR_MASK, WEIGHT_DECAY,
#   PRUNING_FREQUENCY, PRUNING_INTERVAL, SPARSITY_STEPS, WIDTH_STEP, METHOD, SEED, DEVICE,
#   SEEDS (e.g. "1 2 3": one run each, spread over GPUS or SEED_WORKERS, then a table),
#   SPEED_FLAGS (e.g. "--bf16 --cuda_graph", or "--plain"; see main_normal.py --help)
# The run folder is $CKPT_ROOT/<CPG|PackNet>/<EXPERIMENT, default the benchmark's name>/<setting>_seed<SEED>/<arch>
# (a spec's name is its file name without .json); it records the run's settings (run_settings.json), and a rerun
# into it with other settings is refused.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 3 || $# -eq 4 ]] || usage_error "usage: $0 <benchmark> [data_root] <setting> <max_width_multiplier>"
require_folder_name setting "${@: -2:1}"
for_each_seed "$@"
BENCHMARK=$1
DATA_ARGUMENT=""
if (($# == 4)); then
  DATA_ARGUMENT=$2
  shift
fi
SETTING=$2
MAX_WIDTH=$3
RUN_SETTINGS=(MAX_WIDTH)
setting WIDTH_STEP 0.5
setting SPARSITY_STEPS "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.95"
setting METHOD cpg
setting SEED 1
for name in FINETUNE_EPOCHS:100 PRUNE_EPOCHS:20 RETRAIN_EPOCHS:30 LR:1e-2 LRS: LR_MASK:5e-4 PRUNE_LR:1e-3 \
  RETRAIN_LR:1e-3 RETRAIN_LR_MASK:1e-4 BATCH_SIZE:32 WEIGHT_DECAY:4e-5 PRUNING_FREQUENCY:10 PRUNING_INTERVAL:4 \
  VAL_FRACTION: TRAIN_ACCURACY_GATE: PRETRAINED: SPEED_FLAGS:; do
  setting "${name%%:*}" "${name#*:}"
done
require_commands jq awk "$PYTHON"
if ! is_number "$MAX_WIDTH" || ! float_ge "$MAX_WIDTH" 1.0; then
  usage_error "max width multiplier must be a number of at least 1.0, got '$MAX_WIDTH'"
fi
if ! is_number "$WIDTH_STEP" || ! float_gt "$WIDTH_STEP" 0; then
  usage_error "WIDTH_STEP must be a number above 0, got '$WIDTH_STEP'"
fi
read -r -a sparsities <<< "$SPARSITY_STEPS"
((${#sparsities[@]})) || usage_error "SPARSITY_STEPS must list at least one sparsity"
for end in "${sparsities[@]}"; do
  if ! is_number "$end" || ! float_gt "$end" 0 || float_ge "$end" 1; then
    usage_error "SPARSITY_STEPS must list numbers between 0 and 1, got '$end'"
  fi
done
if [[ -n ${GOALS:-} ]]; then  # checked before any stage runs: a missing file is a typo, not a missing goal
  GOALS=$(realpath -m "$GOALS")
  [[ -f $GOALS ]] || usage_error "GOALS: accuracy-goal file $GOALS does not exist"
fi
resolve_roots "$DATA_ARGUMENT"
load_benchmark "$BENCHMARK"
limit_cpu_threads
PRETRAINED_TASKS=0
[[ -n $PRETRAINED ]] && PRETRAINED_TASKS=1  # the pretrained backbone is a task too ("imagenet")
setting TOTAL_TASKS $((${#TASKS[@]} + PRETRAINED_TASKS))
setting ARCH
setting NUM_TASKS
require_count TOTAL_TASKS "$TOTAL_TASKS" "$((${#TASKS[@]} + PRETRAINED_TASKS))"
read -r -a task_lrs <<< "$LRS"
((${#task_lrs[@]} == 0 || ${#task_lrs[@]} >= NUM_TASKS)) || usage_error "LRS needs a learning rate per task ($NUM_TASKS), got ${#task_lrs[@]}"
case $METHOD in
  cpg) METHOD_DIR=CPG ;;
  packnet) METHOD_DIR=PackNet ;;
  *) usage_error "METHOD must be cpg or packnet, got $METHOD" ;;
esac
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/$METHOD_DIR/$RUN_LABEL/${SETTING}_seed$SEED/$ARCH"
begin_run "$ROOT"

COMMON=(--method "$METHOD" --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --batch_size "$BATCH_SIZE"
        --weight_decay "$WEIGHT_DECAY" --max_allowed_network_width_multiplier "$MAX_WIDTH"
        --total_num_tasks "$TOTAL_TASKS" --seed "$SEED" --device "${DEVICE:-auto}")
[[ -n ${GOALS:-} ]] && COMMON+=(--baseline_acc_file "$GOALS")
[[ -n $VAL_FRACTION ]] && COMMON+=(--val_fraction "$VAL_FRACTION")
[[ -n $TRAIN_ACCURACY_GATE ]] && COMMON+=(--train_accuracy_gate "$TRAIN_ACCURACY_GATE")
read -r -a speed_flags <<< "$SPEED_FLAGS"
COMMON+=("${speed_flags[@]}")
GOAL_FLAGS=(--benchmark "$BENCHMARK" --method "$METHOD")
[[ -n ${GOALS:-} ]] && GOAL_FLAGS+=(--baseline_acc_file "$GOALS")

start_stage_server
ratio=$("$PYTHON" -m utils.warm_run tools.capacity --arch "$ARCH" --width "$MAX_WIDTH")
say "width cap $MAX_WIDTH: ${ratio}x the shared weights of width 1.0"
width=1.0
previous=""
for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  dir="$ROOT/$task"
  log="$dir/train.log"
  stages="$dir/.stages"
  record="$dir/gradual_prune/record.txt"
  say "task $k/$NUM_TASKS: $task (width $width, cap $MAX_WIDTH)"
  load=()
  [[ -n $previous ]] && load=(--load_folder "$previous")
  [[ -z $previous && -n $PRETRAINED ]] && load=(--pretrained "$PRETRAINED")

  while true; do
    run_stage "finetune_w$width" "$stages" "$log" "0 2 5" \
      ranked_main --mode finetune --dataset "$task" "${COMMON[@]}" "${load[@]}" \
      --network_width_multiplier "$width" --lr "${task_lrs[k - 1]:-$LR}" --lr_mask "$LR_MASK" \
      --epochs "$FINETUNE_EPOCHS" --save_folder "$dir/scratch" --jsonfile "$record" --log_path "$log"
    state=$STAGE_RC
    [[ $state -eq 2 ]] || break
    float_ge "$width" "$MAX_WIDTH" && die "finetune asked to expand at the width cap $MAX_WIDTH; see $log"
    width=$(float_add "$width" "$WIDTH_STEP")
    width=$(float_min "$width" "$MAX_WIDTH")
    log_decision "$log" "task=$task decision=expand width=$width"
  done

  if [[ $state -ne 5 ]]; then
    start=0.0
    source_folder="$dir/scratch"
    for end in "${sparsities[@]}"; do
      run_stage "prune_$end" "$stages" "$log" "0 6" \
        ranked_main --mode prune --dataset "$task" "${COMMON[@]}" --network_width_multiplier "$width" \
        --lr "$PRUNE_LR" --lr_mask 0.0 --epochs "$PRUNE_EPOCHS" --initial_sparsity "$start" \
        --target_sparsity "$end" --pruning_frequency "$PRUNING_FREQUENCY" \
        --pruning_interval "$PRUNING_INTERVAL" --load_folder "$source_folder" \
        --save_folder "$dir/gradual_prune/$end" --jsonfile "$record" --log_path "$log"
      if [[ $STAGE_RC -eq 6 ]]; then
        log_decision "$log" "task=$task decision=stop_pruning sparsity=$end"
        break
      fi
      start=$end
      source_folder="$dir/gradual_prune/$end"
    done
  fi

  run_stage choose_pruning_ratio "$stages" "$log" "0" \
    "$PYTHON" -m tools.choose_pruning_ratio --task_folder "$dir" --dataset "$task" "${GOAL_FLAGS[@]}" \
    --max_allowed_network_width_multiplier "$MAX_WIDTH" --log_path "$log"

  if ((k > 1)) && [[ $state -ne 5 && $METHOD == cpg ]]; then
    run_stage retrain "$stages" "$log" "0" \
      ranked_main --mode retrain --dataset "$task" "${COMMON[@]}" --network_width_multiplier "$width" \
      --lr "$RETRAIN_LR" --lr_mask "$RETRAIN_LR_MASK" --epochs "$RETRAIN_EPOCHS" \
      --load_folder "$dir/gradual_prune" --save_folder "$dir/retrain" --jsonfile "$dir/retrain/record.txt" \
      --log_path "$log"
    run_stage choose_retrain "$stages" "$log" "0" \
      "$PYTHON" -m tools.choose_retrain --save_folder "$dir/gradual_prune" --load_folder "$dir/retrain" \
      --dataset "$task" --log_path "$log"
  fi
  drop_stage_checkpoints "$dir"
  previous="$dir/gradual_prune"
  facts=$(jq -er -s '[.[0].sparsity, (.[1].test_accuracy // .[1].accuracy), .[1].width] | select(all(. != null))
    | .[]' "$previous/chosen.json" "$previous/meta.json")  # one jq for the three: each start costs 25 ms
  { read -r sparsity; read -r accuracy; read -r final_width; } <<< "$facts"
  say "task $k/$NUM_TASKS: $task done: sparsity $sparsity, test accuracy $accuracy, width $final_width"
done

run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --benchmark "$BENCHMARK" --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS"
write_run_card "$ROOT" "$METHOD" "$SEED"
