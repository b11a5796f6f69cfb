#!/usr/bin/env bash
# Expand-and-Cluster on trained networks: for each seed a fully connected teacher (ARCH) is trained on
# one task with main_normal.py, then N students imitate its logits on the task's training images (or on
# Gaussian inputs, PROBE=gaussian) until their loss plateaus (finetune), and the teacher is rebuilt from
# their clusters layer by layer, then fine-tuned (retrain). Writes OUT_DIR/seed_<seed>/report.json (its
# table beside it as .txt) and the table of the seeds in OUT_DIR/seeds.md, which it prints.
# extract_digits.sh and extract_mnist.sh call it with their benchmark and architectures.
# Usage: scripts/extract_trained.sh BENCHMARK TASK ARCH [OUT_DIR]   (default $CKPT_ROOT/extract/<EXPERIMENT, default
#        ARCH>; environment: SEEDS TEACHER_EPOCHS
#        TEACHER_LR EPOCHS LR PATIENCE MIN_LR STUDENTS EXPANSION GAMMA BETA MASK_SHARE THRESHOLD PROBE SAMPLES
#        FINETUNE_EPOCHS FINETUNE_LR DATA_ROOT CKPT_ROOT DEVICE)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $# -le 4 ]] || usage_error "usage: $0 BENCHMARK TASK ARCH [output folder]"
benchmark=$1 task=$2 arch=$3
CKPT_ROOT=$(realpath -m "${CKPT_ROOT:-$REPO_ROOT/checkpoints}")
out=$(realpath -m "${4:-$CKPT_ROOT/extract/${EXPERIMENT:-$arch}}")
seeds=${SEEDS:-"1 2 3 4 5"}
[[ $seeds =~ ^[0-9\ ]*[0-9][0-9\ ]*$ ]] || usage_error "SEEDS must be integers separated by spaces, got '$seeds'"
# BETA 10: 18 degrees, tighter than extract_synthetic.sh's 30: loose clusters of odd neurons go
for name in GAMMA:0.5 BETA:10 MASK_SHARE:0.1 THRESHOLD:1e-2 TEACHER_EPOCHS:60 TEACHER_LR:0.05 STUDENTS:10 \
  EXPANSION:4 PROBE:data SAMPLES:2000 LR:1e-2 EPOCHS:25000 PATIENCE:200 MIN_LR:1e-7 FINETUNE_EPOCHS:3000 \
  FINETUNE_LR:1e-4 VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
gamma=$GAMMA beta=$BETA mask_share=$MASK_SHARE threshold=$THRESHOLD
if [[ -n $VAL_FRACTION && $PROBE != data ]] && is_number "$VAL_FRACTION" && float_gt "$VAL_FRACTION" 0; then
  usage_error "VAL_FRACTION holds out the teacher's training images, which only PROBE=data probes with;" \
    "got PROBE=$PROBE"  # here, not after the teacher has trained: its extraction stage would refuse the same
fi
absolute_spec benchmark
resolve_roots
limit_cpu_threads
RUN_SETTINGS+=(task arch)
BENCHMARK=$benchmark begin_run "$out"  # SEEDS is not a setting: a rerun may add seeds to the table
cd "$REPO_ROOT" || exit 1

reports=()
for seed in $seeds; do
  folder="$out/seed_$seed"
  log="$folder/train.log"
  data=(--benchmark "$benchmark" --dataset "$task" --data_root "$DATA_ROOT" --seed "$seed" --device "${DEVICE:-auto}")
  [[ -z $VAL_FRACTION ]] || data+=(--val_fraction "$VAL_FRACTION")
  run_stage "teacher_seed$seed" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --method baseline --mode finetune --arch "$arch" "${data[@]}" \
    --epochs "$TEACHER_EPOCHS" --lr "$TEACHER_LR" --batch_size 32 --save_folder "$folder/teacher" \
    --log_path "$log"
  extract=(--method extract "${data[@]}" --load_folder "$folder/teacher" --save_folder "$folder" --log_path "$log"
    --ec_students "$STUDENTS" --ec_expansion "$EXPANSION" --ec_gamma "$gamma" --ec_beta "$beta"
    --ec_probe "$PROBE" --ec_samples "$SAMPLES" --ec_mask_share "$mask_share"
    --ec_threshold "$threshold" --lr "$LR" --epochs "$EPOCHS" --ec_patience "$PATIENCE"
    --ec_min_lr "$MIN_LR" --ec_finetune_epochs "$FINETUNE_EPOCHS"
    --ec_finetune_lr "$FINETUNE_LR" --batch_size 1000000)
  run_stage "students_seed$seed" "$out/.stages" "$log" "0" "$PYTHON" main_normal.py --mode finetune "${extract[@]}"
  report="$folder/report.json"
  rebuild="rebuild_seed${seed}_gamma${gamma}_beta${beta}_mask${mask_share}_below${threshold}"
  # as in extract_synthetic.sh: a report that is gone is rebuilt (the students are kept)
  [[ -f $report ]] || rm -f "$out/.stages/$rebuild"
  run_stage "$rebuild" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --mode retrain "${extract[@]}" --ec_report "$report"
  reports+=("$report")
done
say "recovery per seed (reports: ${reports[*]})"
run_child "$PYTHON" -m tools.extract "${reports[@]}" > "$out/seeds.md"
cat "$out/seeds.md"
