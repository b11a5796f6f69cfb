#!/usr/bin/env bash
# CPG on the twenty CIFAR-100 superclass tasks with the reference hyperparameters: VGG16 that may grow
# to 1.5x its parameters; finetune 100 epochs (lr 1e-2, mask lr 5e-4, batch 32, weight decay 4e-5,
# lr x0.1 at epochs 50 and 80), prune stages of 20 epochs at lr 1e-3 (frequency 10, interval 4) up to
# 0.95, retrain 30 epochs (lr 1e-3, mask lr 1e-4). Goals: baseline_acc.json.
# usage: scripts/CPG_cifar100_scratch_mul_1.5.sh [gpu id; none with GPUS or on the CPU]   (DATA_ROOT, NUM_TASKS,
#        EXPERIMENT (experiment1), ... as in cpg.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -n ${GPUS:-} ]] || select_gpu "${1:-}"  # GPUS=0,1,2,3: all of them (scripts/lib.sh)
export GOALS=${GOALS:-$REPO_ROOT/baseline_acc.json} EXPERIMENT=${EXPERIMENT:-experiment1}
exec bash "$REPO_ROOT/scripts/cpg.sh" cifar100 scratch_mul_1.5 1.5
