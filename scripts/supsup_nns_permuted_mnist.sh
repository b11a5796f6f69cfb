#!/usr/bin/env bash
# SupSup NNs on PermutedMNIST: no task identity at training or at test time. The tasks' training batches
# arrive as one stream; every CHECK_EVERY batches the model checks with the one-shot entropy gradient
# whether the batch comes from a task it knows or a new one (n max_i nu_i < 1 + EPSILON over n = max(masks,
# MAXN) candidates), and allocates a new mask itself up to BUDGET. LeNet 300-100, 500 outputs, 2500 tasks
# of 1000 batches, a check every 100 (the reference). At test time each image's mask is inferred (one-shot,
# entropy) and the image classified with it. Writes <run folder>/train.log (one line per check: its
# decision and the masks allocated so far; also model/checks.csv), results.csv and summary.json (per task:
# the mask it was mapped to, accuracy with the inferred mask, and the number of masks allocated), and
# nns_checks.png (each check's n max nu along the stream against 1 + EPSILON, with the masks allocated).
# BENCHMARK=permuted_digits runs the same on the embedded 8x8 digits (no download). The run folder is
# $CKPT_ROOT/SupSup/<EXPERIMENT, default the benchmark's name>/nns_seed<SEED>/<arch>; a rerun into it with other
# settings is refused.
#
# usage: scripts/supsup_nns_permuted_mnist.sh [gpu id]
# environment: BENCHMARK (permuted_mnist), NUM_TASKS (all of the benchmark's), TASK_BATCHES (1000),
#   CHECK_EVERY (100), BUDGET (NUM_TASKS), EPSILON (0.125), MAXN (5), LR (1e-4), BATCH_SIZE (128),
#   OUTPUT_SIZE (500), INFER_BATCH (1), ARCH, SEED (1), DATA_ROOT, CKPT_ROOT, DEVICE, EXPERIMENT
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [gpu id]"
one_seed_per_run
BENCHMARK=${BENCHMARK:-permuted_mnist}
select_gpu "${1:-}"
require_commands "$PYTHON"
resolve_roots
load_benchmark "$BENCHMARK"
limit_cpu_threads
for name in ARCH NUM_TASKS SEED:1 TASK_BATCHES:1000 CHECK_EVERY:100 BUDGET:"$NUM_TASKS" EPSILON:0.125 MAXN:5 \
  LR:1e-4 BATCH_SIZE:128 OUTPUT_SIZE:500 INFER_BATCH:1 VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/SupSup/$RUN_LABEL/nns_seed$SEED/$ARCH"
begin_run "$ROOT"
start_stage_server
stream=$(IFS=,; printf '%s' "${TASKS[*]:0:NUM_TASKS}")
COMMON=(--method supsup --supsup_scenario nns --benchmark "$BENCHMARK" --dataset "${TASKS[0]}" --arch "$ARCH"
        --data_root "$DATA_ROOT" --seed "$SEED" --device "${DEVICE:-auto}")
[[ -z $VAL_FRACTION ]] || COMMON+=(--val_fraction "$VAL_FRACTION")

run_stage stream "$ROOT/.stages" "$ROOT/train.log" "0" \
  "$PYTHON" main_normal.py --mode finetune "${COMMON[@]}" --supsup_stream "$stream" \
  --supsup_masks threshold --supsup_optimizer rmsprop --supsup_weight_decay 0 \
  --supsup_output_size "$OUTPUT_SIZE" --lr "$LR" --batch_size "$BATCH_SIZE" \
  --supsup_nns_task_batches "$TASK_BATCHES" --supsup_nns_every "$CHECK_EVERY" \
  --supsup_nns_budget "$BUDGET" --supsup_nns_epsilon "$EPSILON" \
  --supsup_nns_maxn "$MAXN" --save_folder "$ROOT/model" --log_path "$ROOT/train.log"

rm -f "$ROOT/results.csv.tmp"
run_child "$PYTHON" main_normal.py --mode inference "${COMMON[@]}" --load_folder "$ROOT/model" \
  --supsup_infer_batch "$INFER_BATCH" --val_batch_size 500 --supsup_results "$ROOT/results.csv.tmp" \
  --supsup_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log"
mv "$ROOT/results.csv.tmp" "$ROOT/results.csv"
run_child "$PYTHON" -m tools.stream_report "$ROOT"
say "masks allocated: $(json_get "$ROOT/summary.json" .masks_allocated); results: $ROOT/results.csv, summary: $ROOT/summary.json"
cat "$ROOT/results.csv"
