#!/usr/bin/env bash
# The one driver of the three subspace scripts (lines, curves, simplexes). Source it after lib.sh.

# run_subspace KIND [BENCHMARK] [TASK]: learn a KIND subspace (line, curve or simplex) of networks on one
# task of BENCHMARK (default the embedded digits10; TASK defaults to the benchmark's first), then evaluate
# it along alpha. Writes $CKPT_ROOT/subspace/<kind>/<benchmark>/<task>/{model/,sweep.csv,sweep.png,
# summary.json,train.log}; a rerun skips the stages that finished.
# environment: EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY, WARMUP_EPOCHS, BETA, LAYERWISE (1 for per-layer points),
#   LABEL_NOISE, VERTICES (simplex), SEED, GPU, DEVICE, DATA_ROOT, CKPT_ROOT
run_subspace() {
  local kind=$1; shift
  (($# <= 2)) || usage_error "usage: $0 [benchmark] [task]"
  local benchmark=${1:-digits10} task=${2:-} root label=$kind
  [[ -z ${GPU:-} ]] || select_gpu "$GPU"
  resolve_roots
  limit_cpu_threads
  benchmark_tasks "$benchmark"
  task=${task:-${TASKS[0]}}
  printf '%s\n' "${TASKS[@]}" | grep -qxF -- "$task" || usage_error "benchmark $benchmark has no task '$task'"
  local extra=()
  if [[ $kind == simplex ]]; then
    label="simplex${VERTICES:-3}"
    extra=(--subspace_vertices "${VERTICES:-3}")
  fi
  if [[ ${LAYERWISE:-0} == 1 ]]; then extra+=(--subspace_layerwise); fi
  root="$CKPT_ROOT/subspace/$label/$benchmark/$task"
  lock_run_root "$root"
  local common=(main_normal.py --method subspace --benchmark "$benchmark" --dataset "$task"
    --data_root "$DATA_ROOT" --batch_size "${BATCH_SIZE:-32}" --seed "${SEED:-1}" --device "${DEVICE:-auto}"
    --log_path "$root/train.log")
  run_stage train "$root/.stages" "$root/train.log" "0" "$PYTHON" "${common[@]}" --mode finetune \
    --subspace "$kind" "${extra[@]}" --epochs "${EPOCHS:-15}" --lr "${LR:-0.05}" \
    --weight_decay "${WEIGHT_DECAY:-1e-4}" --subspace_warmup_epochs "${WARMUP_EPOCHS:-0}" \
    --subspace_beta "${BETA:-1}" --subspace_label_noise "${LABEL_NOISE:-0}" --save_folder "$root/model"
  run_stage evaluate "$root/.stages" "$root/train.log" "0" "$PYTHON" "${common[@]}" --mode inference \
    --load_folder "$root/model" --save_folder "$root"
  say "$label on $benchmark/$task: $root/sweep.csv, $root/sweep.png, $root/summary.json"
}
