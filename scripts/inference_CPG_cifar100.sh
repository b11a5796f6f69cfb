#!/usr/bin/env bash
# Evaluate a finished CPG CIFAR-100 run: every task at its own width with its own batch-norm, head
# and picks, the average, the weights each task owns and the network's size against the unexpanded
# VGG16; prints the table and writes summary.json at the run's root.
# usage: scripts/inference_CPG_cifar100.sh [gpu id]   (SETTING, SEED, EXPERIMENT (experiment1), NUM_TASKS, DATA_ROOT,
#        CKPT_ROOT)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
one_seed_per_run  # the run of SEED
select_gpu "${1:-}"
resolve_roots
limit_cpu_threads
runs="$CKPT_ROOT/CPG/${EXPERIMENT:-experiment1}"
root="$runs/${SETTING:-scratch_mul_1.5}_seed${SEED:-1}/custom_vgg_cifar100"
# a folder without the seed in its name was laid out by hand: the reference's released checkpoints
[[ -d $root || ! -d $runs/${SETTING:-scratch_mul_1.5}/custom_vgg_cifar100 ]] ||
  root="$runs/${SETTING:-scratch_mul_1.5}/custom_vgg_cifar100"
[[ -d $root ]] || usage_error "no CPG run at $root (set SETTING=all_max_mul_1.5 for released checkpoints)"
run_child "$PYTHON" -m tools.report --root "$root" --benchmark cifar100 --data_root "$DATA_ROOT" \
  --num_tasks "${NUM_TASKS:-20}" --device "${DEVICE:-auto}"
