#!/usr/bin/env bash
# The GG baselines of SupSup's Figure 3, sourced by scripts/supsup_gg.sh when BASELINE is set (not a
# driver of its own). Unlike SupSup's independent tasks they share state from task to task, so the tasks run
# one after another on the first GPU: task k starts from task k-1's folder and saves to a folder of its
# own, which keeps each task's network as it was right after learning it. Then every task is evaluated
# into results.csv and summary.json, as for SupSup, and tools.report writes the accuracy matrix
# (metrics.json) from the task folders and run.json for `tools.report --runs`.
#
#   upper_bound           one network per task, all its weights trained, started from the previous task's
#                         (gg_baseline, layers plain; LR = BODY_LR = 1e-3)
#   separate_heads        a body trained by the first task, then frozen; a head per task
#                         (layers fixed_body; LR 1e-2 for the heads, BODY_LR 1e-3)
#   separate_heads_randw  the same on fixed signed-constant weights (layers fixed_body_randw; LR 1e-2)
#   batche                BatchE: per-task rank-one vectors over the body trained by the first task, a head
#                         per task (layers batche; LR 1e-1 as the reference's BatchE, BODY_LR 1e-3)
#   batche_randw          BatchE over fixed signed-constant weights (layers batche_randw; LR 1e-1)
#   transfer              SupSup Transfer: each task's scores start at the mean of the earlier tasks' final
#                         scores (supsup --supsup_transfer, ER budget SPARSITY; LR 1e-3)
# Output: $CKPT_ROOT/SupSup/<EXPERIMENT, default the benchmark's name>/gg_<baseline>_seed<seed>/<arch>/ (transfer:
# gg_transfer_er<s>_seed<seed>).

# gg_baseline_flags: BASELINE_FLAGS (the method and its flags) and BASELINE_NAME (the run folder's name).
gg_baseline_flags() {
  local layers="" lr body_lr=1e-3
  case $BASELINE in
    upper_bound) layers=plain lr=1e-3 ;;
    separate_heads) layers=fixed_body lr=1e-2 ;;
    separate_heads_randw) layers=fixed_body_randw lr=1e-2 ;;
    batche) layers=batche lr=1e-1 ;;
    batche_randw) layers=batche_randw lr=1e-1 ;;
    transfer) lr=1e-3 ;;
  esac
  setting LR "$lr"
  setting BODY_LR "$body_lr"
  lr=$LR body_lr=$BODY_LR
  is_number "$lr" || usage_error "LR must be a number, got '$lr'"
  is_number "$body_lr" || usage_error "BODY_LR must be a number, got '$body_lr'"
  if [[ -z $layers ]]; then
    BASELINE_NAME=gg_transfer_er${SPARSITY}_seed$SEED
    BASELINE_FLAGS=(--method supsup --supsup_transfer --supsup_er "$SPARSITY" --lr "$lr")
  else
    BASELINE_NAME=gg_${BASELINE}_seed$SEED
    BASELINE_FLAGS=(--method gg_baseline --gg_layers "$layers" --lr "$lr" --gg_body_lr "$body_lr")
  fi
}

# run_gg_baseline [GPU]: learn the tasks in a chain on GPU (none: the device DEVICE says), then evaluate them all.
run_gg_baseline() {
  local k task dir folders task_folders=()
  gg_baseline_flags
  run_label "$BENCHMARK"
  ROOT="$CKPT_ROOT/SupSup/$RUN_LABEL/$BASELINE_NAME/$ARCH"
  begin_run "$ROOT"
  select_gpu "${1:-}"
  start_stage_server
  local common=(--benchmark "$BENCHMARK" --arch "$ARCH" --data_root "$DATA_ROOT" --seed "$SEED"
    --val_batch_size 500 --device "${DEVICE:-auto}")
  [[ -z $VAL_FRACTION ]] || common+=(--val_fraction "$VAL_FRACTION")
  say "$BASELINE: learning $NUM_TASKS tasks one after another"
  for ((k = 0; k < NUM_TASKS; k++)); do
    task=${TASKS[k]}
    dir="$ROOT/$task"
    task_folders+=("$dir")
    local load=()
    ((k == 0)) || load=(--load_folder "$ROOT/${TASKS[k - 1]}")
    run_stage finetune "$dir/.stages" "$dir/train.log" "0" \
      "$PYTHON" main_normal.py --mode finetune --dataset "$task" "${BASELINE_FLAGS[@]}" "${common[@]}" "${load[@]}" \
      --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --save_folder "$dir" --log_path "$dir/train.log"
  done
  rm -f "$ROOT/results.csv"
  say "evaluating every task"
  if [[ $BASELINE == transfer ]]; then  # the last folder holds every task's mask
    run_child "$PYTHON" main_normal.py --mode inference --dataset "$task" --method supsup "${common[@]}" \
      --supsup_adaptor gt --load_folder "$dir" --supsup_results "$ROOT/results.csv" \
      --supsup_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log"
  else  # each task from the last folder that holds it: its own for the upper bound, else the last
    folders=$(IFS=,; printf '%s' "${task_folders[*]}")  # joined in bash: a path may hold printf or sed syntax
    run_child "$PYTHON" main_normal.py --mode inference --dataset "$task" --method gg_baseline "${common[@]}" \
      --gg_task_folders "$folders" --gg_results "$ROOT/results.csv" --gg_summary "$ROOT/summary.json" \
      --log_path "$ROOT/eval.log"
  fi
  ((CHILD_RC == 0)) || exit "$CHILD_RC"
  local layout=task  # each folder holds the network after its task: R[i][j] from folder j
  case $BASELINE in
    upper_bound) layout=independent ;;
    transfer) layout=supsup ;;
  esac
  run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints "$layout" --benchmark "$BENCHMARK" \
    --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
  ((CHILD_RC == 0)) || exit "$CHILD_RC"
  write_run_card "$ROOT" "gg_$BASELINE" "$SEED"
  say "results: $ROOT/results.csv, summary: $ROOT/summary.json"
  cat "$ROOT/results.csv"
}
