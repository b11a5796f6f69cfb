#!/usr/bin/env bash
# PackNet on the twenty CIFAR-100 tasks, on the same layers as CPG: each task trains the free weights
# (old ones are used as they are, no picking, no growth), then one-shot prunes 60% of its own weights
# and trains the rest for 30 epochs at lr 1e-3.
# usage: scripts/PackNet_cifar100.sh [gpu id; none with GPUS or on the CPU]   (EXPERIMENT (experiment1) and the
#        rest as in cpg.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -n ${GPUS:-} ]] || select_gpu "${1:-}"  # GPUS=0,1,2,3: all of them (scripts/lib.sh)
export METHOD=packnet ARCH=${ARCH:-vgg16_bn_cifar100} EXPERIMENT=${EXPERIMENT:-experiment1}
export SPARSITY_STEPS=${SPARSITY_STEPS:-0.6} PRUNING_INTERVAL=0 PRUNE_EPOCHS=${PRUNE_EPOCHS:-30}
exec bash "$REPO_ROOT/scripts/cpg.sh" cifar100 one_shot_prune 1.0
