#!/usr/bin/env bash
# Plain models, one per task, for baseline.sh, finetune.sh and finetune_cifar100.sh. Source it after lib.sh.
# shellcheck disable=SC2034  # BENCHMARK is read by lib.sh (begin_run, write_run_card)

# run_plain_models BENCHMARK NAME LOGFILE START: one plain model (ARCH, default the benchmark's
# architecture) per task of BENCHMARK, each task's accuracy added to LOGFILE (default
# logs/<NAME>_<benchmark's name>_acc.json, with _seed<SEED> before _acc for a seed other than 1), an accuracy-goal file
# that cpg.sh takes as GOALS. START is from_scratch (the independent baselines), from_previous_task (the
# sequential finetune baseline: each task starts from the model the previous one left, head included, and
# forgets the earlier tasks), or from_random_earlier_task (the reference's finetune baseline: lr 5e-3 from
# the model of a random earlier task of the same run, chosen with seed ITER_ID). Models go to
# $CKPT_ROOT/baselines/<EXPERIMENT, default the benchmark's name>/<name>_seed<SEED>/<arch>/<task>/ (run_label);
# the first two end with the run's
# accuracy matrix (tools.report: metrics.json, accuracy_matrix.png) and its run.json.
run_plain_models() {
  PLAIN_BENCHMARK=$1 PLAIN_START=$4
  require_commands jq
  local name
  for name in SEED:1 ITER_ID:1 EPOCHS:100 BATCH_SIZE:32 WEIGHT_DECAY:4e-5 FINETUNE_LR:5e-3 VAL_FRACTION:; do
    setting "${name%%:*}" "${name#*:}"
  done
  run_label "$1"
  PLAIN_LOGFILE=${3:-$REPO_ROOT/logs/$2_$BENCHMARK_LABEL$([[ $SEED == 1 ]] || printf '_seed%s' "$SEED")_acc.json}
  PLAIN_LOGFILE=$(realpath -m "$PLAIN_LOGFILE")
  PLAIN_VAL=()
  [[ -z $VAL_FRACTION ]] || PLAIN_VAL=(--val_fraction "$VAL_FRACTION")
  [[ $ITER_ID =~ ^[0-9]{1,9}$ ]] || usage_error "ITER_ID must be a whole number, got '$ITER_ID'"
  absolute_spec PLAIN_BENCHMARK
  resolve_roots
  load_benchmark "$PLAIN_BENCHMARK"
  BENCHMARK=$PLAIN_BENCHMARK
  setting ARCH
  setting NUM_TASKS
  limit_cpu_threads
  PLAIN_ROOT="$CKPT_ROOT/baselines/$RUN_LABEL/$2_seed$SEED/$ARCH"
  begin_run "$PLAIN_ROOT"
  use_gpus
  if [[ $PLAIN_START == from_scratch ]] && ((STAGE_RANKS > 1)); then
    spread_over_gpus "$PLAIN_ROOT/*/train.log" plain_models_share "${STAGE_GPU_IDS[@]}"
  else
    start_stage_server
    plain_models_share 0 1
  fi
  say "accuracies written to $PLAIN_LOGFILE"
  local layout=independent method=independent
  case $PLAIN_START in
    from_scratch) ;;
    from_previous_task) layout=task method=finetune ;;
    *) return 0 ;;
  esac
  run_child "$PYTHON" -m utils.warm_run tools.report --root "$PLAIN_ROOT" --checkpoints "$layout" \
    --benchmark "$PLAIN_BENCHMARK" \
    --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
  write_run_card "$PLAIN_ROOT" "$method" "$SEED"
}

# plain_models_share WORKER WORKERS: run_plain_models' tasks WORKER+1, WORKER+1+WORKERS, ... one after another.
plain_models_share() {
  local k task dir earlier lr
  for ((k = $1 + 1; k <= NUM_TASKS; k += $2)); do
    task=${TASKS[k - 1]}
    dir="$PLAIN_ROOT/$task"
    local load=()
    lr=1e-2
    if [[ $PLAIN_START == from_random_earlier_task ]] && ((k > 1)); then
      earlier=$("$PYTHON" -m tools.random_task_id --curr_task_id "$k" --seed "$ITER_ID")
      load=(--load_folder "$PLAIN_ROOT/${TASKS[earlier - 1]}")
      lr=5e-3
    elif [[ $PLAIN_START == from_previous_task ]] && ((k > 1)); then
      load=(--load_folder "$PLAIN_ROOT/${TASKS[k - 2]}")
      lr=$FINETUNE_LR
    fi
    say "task $k/$NUM_TASKS: $task"
    run_stage baseline "$dir/.stages" "$dir/train.log" "0" \
      ranked_main --method baseline --mode finetune --benchmark "$PLAIN_BENCHMARK" --arch "$ARCH" \
      --dataset "$task" --data_root "$DATA_ROOT" "${load[@]}" --lr "$lr" --epochs "$EPOCHS" \
      --batch_size "$BATCH_SIZE" --weight_decay "$WEIGHT_DECAY" --save_folder "$dir" \
      --logfile "$PLAIN_LOGFILE" --log_path "$dir/train.log" --seed "$SEED" --device "${DEVICE:-auto}" "${PLAIN_VAL[@]}"
  done
}
