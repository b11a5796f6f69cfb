#!/usr/bin/env bash
# The one driver of EWC and LwF (scripts/ewc.sh, scripts/lwf.sh). Source it after lib.sh.
# shellcheck disable=SC2034  # BENCHMARK is read by lib.sh (begin_run, write_run_card)

# run_regularised METHOD FOLDER BENCHMARK [SETTING]: learn BENCHMARK's tasks one after another with METHOD (ewc or
# lwf), a head per task on one plain body, every task at LR (1e-2: the finetune baseline's first task's
# rate, which a new head from scratch needs; that baseline's later tasks go on with a trained head at 5e-3);
# each task's network goes to its own folder
# $ROOT/<task> (EWC's terms beside it, ewc.pth), so the accuracy matrix reads how each old task fared after
# every later one. Ends with tools.report (metrics.json, accuracy_matrix.csv and .png) and run.json.
# The run folder is $CKPT_ROOT/<FOLDER>/<EXPERIMENT, default the benchmark's name>/<setting>_seed<SEED>/<arch>; a rerun
# resumes, and one with other settings into it is refused. From the driver: METHOD_FLAGS, the method's flags,
# and REG_LABEL, the run's name in the comparison tables.
run_regularised() {
  local method=$1 folder=$2 benchmark=$3 setting=${4:-default} previous="" k task dir load=() val=()
  begin_method_run "$folder" "$benchmark" "$setting" EPOCHS:100 LR:1e-2 BATCH_SIZE:32 WEIGHT_DECAY:4e-5 VAL_FRACTION:
  [[ -z $VAL_FRACTION ]] || val=(--val_fraction "$VAL_FRACTION")
  start_stage_server
  for ((k = 1; k <= NUM_TASKS; k++)); do
    task=${TASKS[k - 1]}
    dir="$ROOT/$task"
    load=()
    [[ -z $previous ]] || load=(--load_folder "$previous")
    say "task $k/$NUM_TASKS: $task"
    run_stage "$method" "$dir/.stages" "$dir/train.log" "0" \
      ranked_main --method "$method" --mode finetune --benchmark "$benchmark" --arch "$ARCH" --dataset "$task" \
      --data_root "$DATA_ROOT" "${load[@]}" --lr "$LR" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" \
      --reg_weight_decay "$WEIGHT_DECAY" "${val[@]}" "${METHOD_FLAGS[@]}" --save_folder "$dir" \
      --log_path "$dir/train.log" --seed "$SEED" --device "${DEVICE:-auto}"
    previous=$dir
  done
  run_child "$PYTHON" -m utils.warm_run tools.report --root "$ROOT" --checkpoints regularised \
    --benchmark "$benchmark" --data_root "$DATA_ROOT" --num_tasks "$NUM_TASKS" --device "${DEVICE:-auto}"
  write_run_card "$ROOT" "$REG_LABEL" "$SEED"
  say "run: $ROOT"
}
