#!/usr/bin/env bash
# HopSupSup on split MNIST (5 tasks of two digits, the digits' own labels over 10 shared outputs): a fixed
# 784-2048-2048-10 Swish network whose per-task masks gate batch-norm channels, learned one task after
# another (1 epoch, SGD 0.1, momentum 0.9, no random crops) and stored in a Hopfield network per layer
# (Storkey's rule). Then, for every task, a mask is recovered from the Hopfield weights alone by STEPS steps
# of SGD on the task's test batches (entropy, then GAMMA times the energy per channel) and the network is
# evaluated with it. Writes <run folder>/summary.json and results.csv: per task the accuracy with the stored
# and the recovered mask, the step from which the recovered mask equals the stored one, and the bytes of the
# Hopfield weights against those of the bit-packed mask stack. BENCHMARK=split_digits runs on the embedded
# 8x8 digits.
#
# usage: scripts/supsup_hop_split_mnist.sh [gpu id]
# environment: BENCHMARK (split_mnist), NUM_TASKS (5), HIDDEN (2048), EPOCHS (1), LR (0.1), BATCH_SIZE (128),
#   TEST_BATCH (64), STEPS (30), HOP_LR (500), GAMMA (3.072: the reference's 1.5e-3 on the energy -s^T W s / 2 at
#   2048 units, here on the energy per channel -s^T W s / 2d), SEED (1), DATA_ROOT, CKPT_ROOT, DEVICE, EXPERIMENT
# The run folder is $CKPT_ROOT/SupSup/<EXPERIMENT, default the benchmark's name>/hopfield/h<HIDDEN>_seed<SEED>.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [gpu id]"
one_seed_per_run
BENCHMARK=${BENCHMARK:-split_mnist}
select_gpu "${1:-}"
require_commands "$PYTHON" jq
resolve_roots
ARCH=bn_mask_net load_benchmark "$BENCHMARK"
limit_cpu_threads
for name in NUM_TASKS HIDDEN:2048 SEED:1 EPOCHS:1 LR:0.1 BATCH_SIZE:128 TEST_BATCH:64 STEPS:30 HOP_LR:500 \
  GAMMA:3.072 VAL_FRACTION:; do
  setting "${name%%:*}" "${name#*:}"
done
run_label "$BENCHMARK"
ROOT="$CKPT_ROOT/SupSup/$RUN_LABEL/hopfield/h${HIDDEN}_seed$SEED"
begin_run "$ROOT"
start_stage_server
stream=$(IFS=,; printf '%s' "${TASKS[*]:0:NUM_TASKS}")
# the recovery's settings go to the learn stage too, which checks them with the rest: a bad one stops the run
# before it trains rather than after
COMMON=(--method supsup --supsup_scenario hopfield --benchmark "$BENCHMARK" --dataset "${TASKS[0]}"
        --data_root "$DATA_ROOT" --seed "$SEED" --device "${DEVICE:-auto}" --val_batch_size "$TEST_BATCH"
        --supsup_hop_steps "$STEPS" --supsup_hop_lr "$HOP_LR" --supsup_hop_gamma "$GAMMA")
[[ -z $VAL_FRACTION ]] || COMMON+=(--val_fraction "$VAL_FRACTION")

run_stage learn "$ROOT/.stages" "$ROOT/train.log" "0" \
  "$PYTHON" main_normal.py --mode finetune "${COMMON[@]}" --supsup_stream "$stream" \
  --supsup_hop_hidden "$HIDDEN" --lr "$LR" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" \
  --save_folder "$ROOT/model" --log_path "$ROOT/train.log"

run_child "$PYTHON" main_normal.py --mode inference "${COMMON[@]}" --load_folder "$ROOT/model" \
  --supsup_summary "$ROOT/summary.json" --log_path "$ROOT/eval.log"
jq -r '(.tasks[0] | keys_unsorted | @csv), (.tasks[] | [.[]] | @csv)' "$ROOT/summary.json" > "$ROOT/results.csv.tmp"
mv "$ROOT/results.csv.tmp" "$ROOT/results.csv"
run_child "$PYTHON" -m tools.stream_report "$ROOT"
hopfield_bytes=$(json_get "$ROOT/summary.json" .hopfield_bytes)  # one substitution per command (lib.sh, Signals)
mask_bytes=$(json_get "$ROOT/summary.json" .mask_stack_bytes)
say "Hopfield weights: $hopfield_bytes bytes, mask stack: $mask_bytes bytes; summary: $ROOT/summary.json"
cat "$ROOT/results.csv"
