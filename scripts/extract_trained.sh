#!/usr/bin/env bash
# Expand-and-Cluster on trained networks: for each seed a fully connected teacher (ARCH) is trained on
# one task with main_normal.py, then N students imitate its logits on the task's training images (or on
# Gaussian inputs, PROBE=gaussian) until their loss plateaus (finetune), and the teacher is rebuilt from
# their clusters layer by layer, then fine-tuned (retrain). Writes OUT_DIR/seed_<seed>/report.json (its
# table beside it as .txt) and the table of the seeds in OUT_DIR/seeds.md, which it prints.
# extract_digits.sh and extract_mnist.sh call it with their benchmark and architectures.
# Usage: scripts/extract_trained.sh BENCHMARK TASK ARCH [OUT_DIR]   (environment: SEEDS TEACHER_EPOCHS
#        TEACHER_LR EPOCHS LR PATIENCE MIN_LR STUDENTS EXPANSION GAMMA BETA MASK_SHARE THRESHOLD PROBE SAMPLES
#        FINETUNE_EPOCHS FINETUNE_LR DATA_ROOT DEVICE)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $# -le 4 ]] || usage_error "usage: $0 BENCHMARK TASK ARCH [output folder]"
benchmark=$1 task=$2 arch=$3
out=$(realpath -m "${4:-$REPO_ROOT/checkpoints/extract/$arch}")
seeds=${SEEDS:-"1 2 3 4 5"}
[[ $seeds =~ ^[0-9\ ]+$ ]] || usage_error "SEEDS must be integers separated by spaces, got '$seeds'"
gamma=${GAMMA:-0.5}
beta=${BETA:-10}  # 18 degrees, tighter than extract_synthetic.sh's 30: loose clusters of odd neurons go
mask_share=${MASK_SHARE:-0.1}
threshold=${THRESHOLD:-1e-2}
resolve_roots
limit_cpu_threads
lock_run_root "$out"
cd "$REPO_ROOT" || exit 1

reports=()
for seed in $seeds; do
  folder="$out/seed_$seed"
  log="$folder/train.log"
  data=(--benchmark "$benchmark" --dataset "$task" --data_root "$DATA_ROOT" --seed "$seed" --device "${DEVICE:-auto}")
  run_stage "teacher_seed$seed" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --method baseline --mode finetune --arch "$arch" "${data[@]}" \
    --epochs "${TEACHER_EPOCHS:-60}" --lr "${TEACHER_LR:-0.05}" --batch_size 32 --save_folder "$folder/teacher" \
    --log_path "$log"
  extract=(--method extract "${data[@]}" --load_folder "$folder/teacher" --save_folder "$folder" --log_path "$log"
    --ec_students "${STUDENTS:-10}" --ec_expansion "${EXPANSION:-4}" --ec_gamma "$gamma" --ec_beta "$beta"
    --ec_probe "${PROBE:-data}" --ec_samples "${SAMPLES:-2000}" --ec_mask_share "$mask_share"
    --ec_threshold "$threshold" --lr "${LR:-1e-2}" --epochs "${EPOCHS:-25000}" --ec_patience "${PATIENCE:-200}"
    --ec_min_lr "${MIN_LR:-1e-7}" --ec_finetune_epochs "${FINETUNE_EPOCHS:-3000}"
    --ec_finetune_lr "${FINETUNE_LR:-1e-4}" --batch_size 1000000)
  run_stage "students_seed$seed" "$out/.stages" "$log" "0" "$PYTHON" main_normal.py --mode finetune "${extract[@]}"
  report="$folder/report.json"
  rebuild="rebuild_seed${seed}_gamma${gamma}_beta${beta}_mask${mask_share}_below${threshold}"
  # as in extract_synthetic.sh: the seed's report is its latest rebuild's, so rebuild unless these settings made it
  [[ -f $report && -f $out/.stages/$rebuild ]] || rm -f "$out/.stages/rebuild_seed${seed}_"*
  run_stage "$rebuild" "$out/.stages" "$log" "0" \
    "$PYTHON" main_normal.py --mode retrain "${extract[@]}" --ec_report "$report"
  reports+=("$report")
done
say "recovery per seed (reports: ${reports[*]})"
run_child "$PYTHON" -m tools.extract "${reports[@]}" > "$out/seeds.md"
cat "$out/seeds.md"
