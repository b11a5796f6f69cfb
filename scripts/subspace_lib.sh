#!/usr/bin/env bash
# The one driver of the three subspace scripts (lines, curves, simplexes). Source it after lib.sh.

# run_subspace KIND [BENCHMARK] [TASK]: learn a KIND subspace (line, curve or simplex) of networks on one
# task of BENCHMARK (default the embedded digits10; TASK defaults to the benchmark's first), then evaluate
# it along alpha. Writes $CKPT_ROOT/subspace/<kind>/<EXPERIMENT, default the benchmark's name>/<task>/seed<SEED>/
# {model/,sweep.csv,sweep.png,summary.json,train.log}; a rerun skips the stages that finished, and one with other
# settings is refused.
# environment: EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY, WARMUP_EPOCHS, BETA, LAYERWISE (1 for per-layer points),
#   LABEL_NOISE, VERTICES (simplex), VAL_FRACTION (training images held out to report val_acc on), SEED,
#   GPU, DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT
run_subspace() {
  local kind=$1; shift
  (($# <= 2)) || usage_error "usage: $0 [benchmark] [task]"
  one_seed_per_run
  local benchmark=${1:-digits10} task=${2:-} root label=$kind name
  [[ -z ${GPU:-} ]] || select_gpu "$GPU"
  absolute_spec benchmark
  resolve_roots
  limit_cpu_threads
  benchmark_tasks "$benchmark"
  task=${task:-${TASKS[0]}}
  printf '%s\n' "${TASKS[@]}" | grep -qxF -- "$task" || usage_error "benchmark $benchmark has no task '$task'"
  local extra=()
  for name in SEED:1 EPOCHS:15 BATCH_SIZE:32 LR:0.05 WEIGHT_DECAY:1e-4 WARMUP_EPOCHS:0 BETA:1 LAYERWISE:0 \
    LABEL_NOISE:0 VERTICES:3 VAL_FRACTION:; do
    setting "${name%%:*}" "${name#*:}"
  done
  if [[ $kind == simplex ]]; then
    label="simplex$VERTICES"
    extra=(--subspace_vertices "$VERTICES")
  fi
  if [[ $LAYERWISE == 1 ]]; then extra+=(--subspace_layerwise); fi
  run_label "$benchmark"
  root="$CKPT_ROOT/subspace/$label/$RUN_LABEL/$task/seed$SEED"
  BENCHMARK=$benchmark begin_run "$root"
  local common=(main_normal.py --method subspace --benchmark "$benchmark" --dataset "$task"
    --data_root "$DATA_ROOT" --batch_size "$BATCH_SIZE" --seed "$SEED" --device "${DEVICE:-auto}"
    --log_path "$root/train.log")
  [[ -z $VAL_FRACTION ]] || common+=(--val_fraction "$VAL_FRACTION")
  run_stage train "$root/.stages" "$root/train.log" "0" "$PYTHON" "${common[@]}" --mode finetune \
    --subspace "$kind" "${extra[@]}" --epochs "$EPOCHS" --lr "$LR" \
    --weight_decay "$WEIGHT_DECAY" --subspace_warmup_epochs "$WARMUP_EPOCHS" \
    --subspace_beta "$BETA" --subspace_label_noise "$LABEL_NOISE" --save_folder "$root/model"
  run_stage evaluate "$root/.stages" "$root/train.log" "0" "$PYTHON" "${common[@]}" --mode inference \
    --load_folder "$root/model" --save_folder "$root"
  say "$label on $benchmark/$task: $root/sweep.csv, $root/sweep.png, $root/summary.json"
}
