#!/usr/bin/env bash
# Twenty independently trained VGG16 models, one per CIFAR-100 task (lr 1e-2, 100 epochs); their test
# accuracies are written to an accuracy-goal file (default logs/baseline_cifar100_acc.json) that CPG
# can use as GOALS. scripts/baseline.sh cifar100 on the given GPU, with the VGG16 of the reference.
# usage: scripts/baseline_cifar100.sh [gpu id; none with GPUS or on the CPU]   (DATA_ROOT, NUM_TASKS, EPOCHS, LOGFILE,
#        CKPT_ROOT, EXPERIMENT)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -n ${GPUS:-} ]] || select_gpu "${1:-}"  # GPUS=0,1,2,3: all of them (scripts/lib.sh)
export ARCH=${ARCH:-vgg16_bn_cifar100}
exec bash "$REPO_ROOT/scripts/baseline.sh" cifar100
