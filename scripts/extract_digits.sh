#!/usr/bin/env bash
# Expand-and-Cluster on a trained network: a small fully connected teacher (digits_mlp_16) is trained
# on all ten 8x8 digits with main_normal.py, then N students imitate its logits on the training
# images (finetune) and the teacher is rebuilt from their clusters (retrain); writes the report to
# OUT_DIR/report.json (its table to report.txt) and prints the table.
# Usage: scripts/extract_digits.sh [OUT_DIR]   (environment: TEACHER_EPOCHS EPOCHS LR STUDENTS EXPANSION
#        GAMMA BETA DATA_ROOT DEVICE SEED)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [output folder]"
out=$(realpath -m "${1:-$REPO_ROOT/checkpoints/extract/digits}")
resolve_roots
limit_cpu_threads
seed=${SEED:-1}
gamma=${GAMMA:-0.5}
beta=${BETA:-6}
lock_run_root "$out"

data=(--benchmark digits10 --dataset digits10 --data_root "$DATA_ROOT" --seed "$seed" --device "${DEVICE:-auto}")
log="$out/train.log"
run_stage teacher "$out/.stages" "$log" "0" \
  "$PYTHON" main_normal.py --method baseline --mode finetune --arch digits_mlp_16 "${data[@]}" \
  --epochs "${TEACHER_EPOCHS:-30}" --lr 0.05 --batch_size 32 --save_folder "$out/teacher" --log_path "$log"
extract=(--method extract "${data[@]}" --load_folder "$out/teacher" --save_folder "$out" --log_path "$log"
  --ec_students "${STUDENTS:-10}" --ec_expansion "${EXPANSION:-4}" --ec_gamma "$gamma" --ec_beta "$beta"
  --lr "${LR:-1e-2}" --epochs "${EPOCHS:-3000}" --batch_size 1000000)
run_stage students "$out/.stages" "$log" "0" "$PYTHON" main_normal.py --mode finetune "${extract[@]}"
report="$out/report.json"
rebuild="rebuild_gamma${gamma}_beta${beta}"
# the report is the latest rebuild's: rebuild unless these settings made it. A folder from before the
# report had no file there; a rebuild under other settings forgets their markers, as it replaces their report.
[[ -f $report && -f $out/.stages/$rebuild ]] || rm -f "$out/.stages/"rebuild_*
run_stage "$rebuild" "$out/.stages" "$log" "0" \
  "$PYTHON" main_normal.py --mode retrain "${extract[@]}" --ec_report "$report"
say "report: ${report%.json}.txt"
cat "${report%.json}.txt"
