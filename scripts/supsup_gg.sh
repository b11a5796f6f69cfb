#!/usr/bin/env bash
# SupSup GG (task given at train and test time) on RandSplitCIFAR100: each of the 20 tasks learns its
# own supermask over the same fixed signed-constant GEMResNet18 weights. Tasks are independent, so
# they are spread over the given GPUs (one worker per GPU, each training its share one after another);
# then every task is evaluated with its own mask in one merged network, and results.csv (per task
# accuracy right after learning and at the end, average) and summary.json are written.
# Rerunning after an interruption skips the tasks that finished.
# BASELINE runs one of the paper's Figure 3 baselines instead (scripts/supsup_gg_baselines.sh):
# upper_bound, separate_heads, separate_heads_randw, batche, batche_randw or transfer (default supsup).
#
# usage: scripts/supsup_gg.sh [gpu list, e.g. 0 1 2 or 0,1,2; default none: the device DEVICE says, one worker]
# environment: NUM_TASKS, EPOCHS (250), SPARSITY (ER factor, 32), LR (1e-3), BATCH_SIZE (128), SEED (0),
#   BENCHMARK (rand_split_cifar100; the embedded permuted_digits, or split_digits with ARCH=lenet_300_100),
#   ARCH (gem_resnet18), BASELINE, BODY_LR (baselines that train a body), DATA_ROOT, CKPT_ROOT, DEVICE,
#   EXPERIMENT (names the run folder instead of the benchmark's name),
#   SEEDS (e.g. "1 2 3": one run each, spread over GPUS or SEED_WORKERS, then a table; baselines too)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a gpu_ids <<< "${*//,/ }"
workers=("${gpu_ids[@]}")
((${#workers[@]})) || workers=(any)  # no GPU id: one worker on the device DEVICE says
for gpu in "${gpu_ids[@]}"; do
  [[ $gpu =~ ^[0-9]+$ ]] || usage_error "usage: $0 [gpu ids, e.g. 0 1 2]; got '$gpu'"
done
BASELINE=${BASELINE:-supsup}
case $BASELINE in
  supsup | upper_bound | separate_heads | separate_heads_randw | batche | batche_randw | transfer) ;;
  *) usage_error "BASELINE must be supsup, upper_bound, separate_heads, separate_heads_randw, batche," \
    "batche_randw or transfer; got '$BASELINE'" ;;
esac
for_each_seed "$@"
require_commands jq "$PYTHON"
setting BENCHMARK rand_split_cifar100
resolve_roots
load_benchmark "$BENCHMARK"
limit_cpu_threads
for name in ARCH NUM_TASKS BASELINE SPARSITY:32 SEED:0 EPOCHS:250 BATCH_SIZE:128 VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
if [[ $BASELINE != supsup ]]; then
  # shellcheck source=scripts/supsup_gg_baselines.sh
  source "$(dirname "${BASH_SOURCE[0]}")/supsup_gg_baselines.sh"
  run_gg_baseline "${gpu_ids[0]:-}"
  exit 0
fi
setting LR 1e-3
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/SupSup/$RUN_LABEL/gg_er${SPARSITY}_seed$SEED/$ARCH"
begin_run "$ROOT"
COMMON=(--method supsup --benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "$SEED")
[[ -z $VAL_FRACTION ]] || COMMON+=(--val_fraction "$VAL_FRACTION")

# train_share WORKER WORKERS: the tasks WORKER, WORKER + WORKERS, ... one after another (on the worker's GPU).
train_share() {
  local k task dir
  for ((k = $1; k < NUM_TASKS; k += $2)); do
    task=${TASKS[k]}
    dir="$ROOT/$task"
    run_stage finetune "$dir/.stages" "$dir/train.log" "0" \
      "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${COMMON[@]}" --supsup_er "$SPARSITY" \
      --lr "$LR" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --val_batch_size 500 \
      --save_folder "$dir" --log_path "$dir/train.log" --device "${DEVICE:-auto}"
  done
}

launch_stage_server supsup  # one warm interpreter forks every stage, whichever GPU worker asks
await_stage_server
where="device ${DEVICE:-auto}"
((${#gpu_ids[@]} == 0)) || where="GPU(s) ${gpu_ids[*]}"
say "training $NUM_TASKS tasks on $where"
spread_over_gpus "$ROOT/*/train.log" train_share "${workers[@]}"

# joined in bash, not sed: a path may hold characters that are sed syntax (& | \)
task_folders=()
for task in "${TASKS[@]:0:NUM_TASKS}"; do
  task_folders+=("$ROOT/$task")
done
folders=$(IFS=,; printf '%s' "${task_folders[*]}")
select_gpu "${gpu_ids[0]:-}"
rm -f "$ROOT/results.csv"
say "evaluating every task with its own mask"
run_child "$PYTHON" main_normal.py --mode inference --dataset "${TASKS[NUM_TASKS - 1]}" "${COMMON[@]}" \
  --supsup_adaptor gt --supsup_task_folders "$folders" --supsup_results "$ROOT/results.csv" \
  --supsup_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log" --val_batch_size 500 --device "${DEVICE:-auto}"
run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints supsup --benchmark "$BENCHMARK" \
  --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
write_run_card "$ROOT" supsup_gg "$SEED"
say "results: $ROOT/results.csv, summary: $ROOT/summary.json"
cat "$ROOT/results.csv"
