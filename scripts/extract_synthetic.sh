#!/usr/bin/env bash
# Expand-and-Cluster on synthetic teachers: for each seed a random teacher (SIZES, ACTIVATION) probed
# with Gaussian inputs, N students EXPANSION times wider (finetune), then clustering, layer-by-layer
# reconstruction and fine-tuning (retrain); ends with a table of the seeds' recovery reports
# (OUT_DIR/seed_<seed>.report.json, each with its .txt table beside it; the table in OUT_DIR/seeds.md).
# Usage: scripts/extract_synthetic.sh [OUT_DIR]   (default $CKPT_ROOT/extract/<EXPERIMENT, default synthetic>;
#        environment: SEEDS SIZES ACTIVATION STUDENTS EXPANSION GAMMA BETA EPOCHS LR SAMPLES DEVICE)
# It reads no data: its inputs are drawn (DATA_ROOT is not used).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [output folder]"
CKPT_ROOT=$(realpath -m "${CKPT_ROOT:-$REPO_ROOT/checkpoints}")
out=$(realpath -m "${1:-$CKPT_ROOT/extract/${EXPERIMENT:-synthetic}}")
seeds=${SEEDS:-"1 2 3 4 5"}
[[ $seeds =~ ^[0-9\ ]*[0-9][0-9\ ]*$ ]] || usage_error "SEEDS must be integers separated by spaces, got '$seeds'"
for name in GAMMA:0.5 BETA:6 SIZES:20,8,2 ACTIVATION:relu STUDENTS:10 EXPANSION:4 SAMPLES:2000 LR:1e-2 \
  EPOCHS:6000; do
  setting "${name%%:*}" "${name#*:}"
done
gamma=$GAMMA beta=$BETA
require_python
limit_cpu_threads
begin_run "$out"  # SEEDS is not a setting: a rerun may add seeds to the table
cd "$REPO_ROOT" || exit 1

common=(--method extract --benchmark gaussian_teacher --dataset gaussian --data_root "$out"
  --save_folder "$out" --ec_sizes "$SIZES" --ec_activation "$ACTIVATION"
  --ec_students "$STUDENTS" --ec_expansion "$EXPANSION" --ec_samples "$SAMPLES"
  --ec_gamma "$gamma" --ec_beta "$beta" --lr "$LR" --epochs "$EPOCHS" --batch_size 1000000
  --device "${DEVICE:-auto}")
reports=()
for seed in $seeds; do
  log="$out/seed_$seed.log"
  run_stage "students_seed$seed" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --mode finetune "${common[@]}" --seed "$seed" --log_path "$log"
  report="$out/seed_$seed.report.json"
  rebuild="rebuild_seed${seed}_gamma${gamma}_beta${beta}"
  # the seed's report is its rebuild's output: a report that is gone is rebuilt (the students are kept)
  [[ -f $report ]] || rm -f "$out/.stages/$rebuild"
  run_stage "$rebuild" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --mode retrain "${common[@]}" --seed "$seed" --log_path "$log" --ec_report "$report"
  reports+=("$report")
done
say "recovery per seed (reports: ${reports[*]})"
run_child "$PYTHON" -m tools.extract "${reports[@]}" > "$out/seeds.md"
cat "$out/seeds.md"
