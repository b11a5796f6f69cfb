#!/usr/bin/env bash
# Twenty independently trained VGG16 models, one per CIFAR-100 task (lr 1e-2, 100 epochs); their test
# accuracies are written to an accuracy-goal file (default logs/baseline_cifar100_acc.json) that CPG
# can use as GOALS.
# usage: scripts/baseline_cifar100.sh <gpu id, or none with GPUS>   (DATA_ROOT, NUM_TASKS, EPOCHS, LOGFILE, CKPT_ROOT)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -n ${GPUS:-} ]] || select_gpu "${1:-}"  # GPUS=0,1,2,3: all of them (scripts/lib.sh)
run_plain_models baseline "${LOGFILE:-$REPO_ROOT/logs/baseline_cifar100_acc.json}" from_scratch
