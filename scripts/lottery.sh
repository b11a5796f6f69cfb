#!/usr/bin/env bash
# Lottery tickets on one task of any benchmark, for each seed: level 0 trains dense, each later level
# prunes PRUNE_FRACTION of the remaining weights by magnitude and rewinds the rest to iteration
# REWIND_STEP, up to the level nearest the highest of TARGETS; at the levels nearest each target
# sparsity the random-reinit and random-mask controls train too. Then the report over the seeds:
# report.md (Markdown table) and accuracy.png (accuracy against remaining weights).
# Writes $CKPT_ROOT/lottery/<EXPERIMENT, default the benchmark's name>/<task>/<arch>/<scope>_p<fraction>_rewind<step>_e<epochs>_lr<lr>/
#   {seed<S>/level_<k>/{,reinit/,random_mask/},report.md,accuracy.png}; a rerun skips finished stages.
#
# usage: scripts/lottery.sh [benchmark] [task]   (default: BENCHMARK, else digits10; the task defaults to
#        the benchmark's first)
# environment: ARCH (default: the benchmark's), EPOCHS (20), LR (0.02), BATCH_SIZE (32), MOMENTUM (0.9),
#   WEIGHT_DECAY (0), PRUNE_FRACTION (0.2), PRUNE_SCOPE (global or layerwise), REWIND_STEP (0: the
#   initialisation), TARGETS (target sparsities, "0.5 0.8 0.9 0.95"), SEEDS ("1 2 3"), VAL_FRACTION, DEVICE, GPU,
#   DATA_ROOT, CKPT_ROOT, EXPERIMENT. CIFAR-10 (benchmark cifar10, VGG16 by default, ARCH=gem_resnet18 for a ResNet)
#   and image folders (a benchmark spec file) read their files from DATA_ROOT; a missing one stops the
#   first stage with a line saying where the files go.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# <= 2)) || usage_error "usage: $0 [benchmark] [task]"
benchmark=${1:-${BENCHMARK:-digits10}}
[[ -z ${GPU:-} ]] || select_gpu "$GPU"
absolute_spec benchmark
resolve_roots
limit_cpu_threads
load_benchmark "$benchmark"
[[ -n $ARCH ]] || usage_error "benchmark $benchmark has no default architecture; name one with ARCH"
task=${2:-${TASKS[0]}}
printf '%s\n' "${TASKS[@]}" | grep -qxF -- "$task" || usage_error "benchmark $benchmark has no task '$task'"
for name in PRUNE_FRACTION:0.2 PRUNE_SCOPE:global REWIND_STEP:0 EPOCHS:20 LR:0.02 BATCH_SIZE:32 MOMENTUM:0.9 \
  WEIGHT_DECAY:0 TARGETS:"0.5 0.8 0.9 0.95" ARCH VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
fraction=$PRUNE_FRACTION scope=$PRUNE_SCOPE rewind=$REWIND_STEP epochs=$EPOCHS lr=$LR
read -r -a seeds <<< "${SEEDS:-1 2 3}"  # not a setting: a rerun may add seeds to the report
read -r -a targets <<< "$TARGETS"
((${#seeds[@]} && ${#targets[@]})) || usage_error "SEEDS and TARGETS must each name at least one value"
for seed in "${seeds[@]}"; do [[ $seed =~ ^[0-9]{1,9}$ ]] || usage_error "SEEDS must be whole numbers, got '$seed'"; done
# between VALUE: whether VALUE is a number strictly between 0 and 1.
between() { is_number "$1" && float_gt "$1" 0 && float_gt 1 "$1"; }
between "$fraction" || usage_error "PRUNE_FRACTION must be a number between 0 and 1, got '$fraction'"
for target in "${targets[@]}"; do
  between "$target" || usage_error "TARGETS must be sparsities between 0 and 1, got '$target'"
done

# nearest_level SPARSITY: the level k whose sparsity 1 - (1 - fraction)^k is nearest SPARSITY (at least 1).
nearest_level() {
  awk -v s="$1" -v p="$fraction" 'BEGIN {
    k = int(log(1 - s) / log(1 - p) + 0.5)
    print (k < 1 ? 1 : k)
  }'
}
control_levels=()
last=0
for target in "${targets[@]}"; do
  level=$(nearest_level "$target")
  control_levels+=("$level")
  ((level <= last)) || last=$level
done

run_label "$benchmark"
root="$CKPT_ROOT/lottery/$RUN_LABEL/$task/$ARCH/${scope}_p${fraction}_rewind${rewind}_e${epochs}_lr${lr}"
BENCHMARK=$benchmark begin_run "$root"
start_stage_server
say "lottery on $benchmark/$task ($ARCH): levels 0-$last, controls at levels ${control_levels[*]}, seeds ${seeds[*]}"
for seed in "${seeds[@]}"; do
  run="$root/seed$seed"
  log="$run/train.log"
  common=(main_normal.py --method lottery --benchmark "$benchmark" --dataset "$task" --arch "$ARCH"
    --data_root "$DATA_ROOT" --epochs "$epochs" --lr "$lr" --batch_size "$BATCH_SIZE"
    --momentum "$MOMENTUM" --weight_decay "$WEIGHT_DECAY" --prune_fraction "$fraction"
    --prune_scope "$scope" --rewind_step "$rewind" --seed "$seed" --device "${DEVICE:-auto}"
    --save_folder "$run" --log_path "$log")
  [[ -z $VAL_FRACTION ]] || common+=(--val_fraction "$VAL_FRACTION")
  run_stage "seed${seed}_level0" "$root/.stages" "$log" "0" "$PYTHON" "${common[@]}" --mode finetune
  for ((level = 1; level <= last; level++)); do
    run_stage "seed${seed}_level$level" "$root/.stages" "$log" "0" "$PYTHON" "${common[@]}" --mode prune \
      --level "$level"
    [[ " ${control_levels[*]} " == *" $level "* ]] || continue
    for control in reinit random_mask; do
      run_stage "seed${seed}_level${level}_$control" "$root/.stages" "$log" "0" "$PYTHON" "${common[@]}" \
        --mode retrain --level "$level" --control "$control"
    done
  done
done
targets_csv=$(IFS=,; printf '%s' "${targets[*]}")
"$PYTHON" -m tools.lottery_report "$root" --targets "$targets_csv" \
  --title "$benchmark/$task, $ARCH, $scope p=$fraction, rewind $rewind"
say "report: $root/report.md, plot: $root/accuracy.png"
