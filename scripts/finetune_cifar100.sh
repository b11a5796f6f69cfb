#!/usr/bin/env bash
# Finetune baseline: each CIFAR-100 task after the first starts from the model (head included) of a
# random earlier task of this run (lr 5e-3; the first task from scratch at lr 1e-2); the accuracies go
# to logs/finetune_cifar100_acc_<ITER_ID>.json. Run it with ITER_ID=1..5 for the reference's averages.
# usage: scripts/finetune_cifar100.sh [gpu id; none with GPUS or on the CPU]   (ITER_ID, DATA_ROOT, NUM_TASKS, EPOCHS,
#        CKPT_ROOT, EXPERIMENT)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/plain_models_lib.sh
source "$REPO_ROOT/scripts/plain_models_lib.sh"
one_seed_per_run  # ITER_ID repeats the run, as the reference does
[[ -n ${GPUS:-} ]] || select_gpu "${1:-}"  # GPUS=0,1,2,3: all of them (scripts/lib.sh)
ITER_ID=${ITER_ID:-1}
ARCH=${ARCH:-vgg16_bn_cifar100}
run_plain_models cifar100 "finetune_$ITER_ID" "${LOGFILE:-$REPO_ROOT/logs/finetune_cifar100_acc_$ITER_ID.json}" \
  from_random_earlier_task
