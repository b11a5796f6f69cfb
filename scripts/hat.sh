#!/usr/bin/env bash
# HAT, hard attention to the task (Serra et al. 2018), on any benchmark whose architecture is a chain of
# layers (default split_digits; permuted_digits too): one network learns the tasks in order, each task
# gating the units it uses, and gradients of the weights earlier tasks use are held. Each task's network is
# kept in <run>/<task>; the end is the accuracy matrix (metrics.json, accuracy_matrix.csv and .png), whose
# BWT is measured (HAT is near forget-free, not exactly), and summary.json (each task's accuracy right after
# learning and at the end, the share of units the tasks attend to, the storage against one network per task).
# Rerunning after an interruption skips the tasks that finished.
#
# usage: scripts/hat.sh [benchmark] [setting]
# environment: NUM_TASKS, EPOCHS (most per task, 200; the schedule usually stops earlier), LR (0.05),
#   BATCH_SIZE (64; 16 on split_digits and permuted_digits, whose small tasks would take few steps an epoch),
#   SMAX (400), C (0.75), LR_FACTOR (3), LR_PATIENCE (5), LR_MIN (1e-4), CLIPGRAD (10000), VAL_FRACTION,
#   ARCH, SEED, DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT (names the run folder instead of the benchmark),
#   SEEDS (e.g. "1 2 3": one run each, spread over GPUS or SEED_WORKERS, then a table)
# The run folder is $CKPT_ROOT/HAT/<EXPERIMENT, default the benchmark's name>/<setting>_seed<SEED>/<arch>; a rerun into
# it with other settings is refused (run_settings.json).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 2 ]] || usage_error "usage: $0 [benchmark] [setting]"
require_folder_name setting "${2:-default}"
for_each_seed "$@"
benchmark=${1:-split_digits}
batch=64
[[ $benchmark != split_digits && $benchmark != permuted_digits ]] || batch=16
begin_method_run HAT "$benchmark" "${2:-default}" EPOCHS:200 LR:0.05 BATCH_SIZE:$batch SMAX:400 C:0.75 \
  LR_FACTOR:3 LR_PATIENCE:5 LR_MIN:1e-4 CLIPGRAD:10000 VAL_FRACTION:
COMMON=(--method hat --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "$SEED"
        --device "${DEVICE:-auto}" --epochs "$EPOCHS" --lr "$LR" --batch_size "$BATCH_SIZE" --hat_smax "$SMAX"
        --hat_c "$C" --hat_lr_factor "$LR_FACTOR" --hat_lr_patience "$LR_PATIENCE" --hat_lr_min "$LR_MIN"
        --hat_clipgrad "$CLIPGRAD")
[[ -z $VAL_FRACTION ]] || COMMON+=(--val_fraction "$VAL_FRACTION")

start_stage_server
previous=()
for ((k = 1; k <= NUM_TASKS; k++)); do
  task=${TASKS[k - 1]}
  dir="$ROOT/$task"
  say "task $k/$NUM_TASKS: $task"
  run_stage hat "$dir/.stages" "$dir/train.log" "0" \
    "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" "${previous[@]}" \
    --save_folder "$dir" --log_path "$dir/train.log"
  previous=(--load_folder "$dir")
done

run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints task --benchmark "$BENCHMARK" \
  --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
metas=()
for ((k = 1; k <= NUM_TASKS; k++)); do
  metas+=("$ROOT/${TASKS[k - 1]}/meta.json")
done
# summary.json: the matrix's diagonal and last column per task, beside what each task's stage measured
jq -s '.[0] as $m | {benchmark: $m.benchmark, method: "hat", metrics: $m.metrics, capacity: $m.capacity,
  task_names: $m.task_names, accuracy_matrix: $m.accuracy_matrix,
  tasks: [range(0; $m.task_names | length) as $i | {task: $m.task_names[$i],
    accuracy_after_learning: $m.accuracy_matrix[$i][$i], accuracy_final: $m.accuracy_matrix[$i][-1],
    best_epoch: .[$i + 1].best_epoch, attention_used: .[$i + 1].attention_used}]}' \
  "$ROOT/metrics.json" "${metas[@]}" > "$ROOT/summary.json.tmp"
mv "$ROOT/summary.json.tmp" "$ROOT/summary.json"
jq -r '(.tasks[] | "\(.task)\tlearned \(.accuracy_after_learning)\tfinal \(.accuracy_final)"),
  "BWT \(.metrics.backward_transfer) (measured: HAT holds the weights its earlier tasks fully use, not every one)"' \
  "$ROOT/summary.json"
write_run_card "$ROOT" hat "$SEED"
say "summary: $ROOT/summary.json"
