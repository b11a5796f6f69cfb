#!/usr/bin/env bash
# The finetune baseline of any benchmark, the lower bound of continual learning: one plain model learns
# the tasks one after another, each task starting from the model the previous task left (head included,
# lr FINETUNE_LR, 5e-3; the first task from scratch at 1e-2), so it forgets the earlier ones. Ends with the
# accuracy matrix (metrics.json, accuracy_matrix.csv and .png), whose BWT shows the forgetting; the
# accuracies right after learning go to an accuracy-goal file (default logs/finetune_<benchmark>_acc.json; for a
# seed other than 1 logs/finetune_<benchmark>_seed<seed>_acc.json).
# Rerunning skips the tasks that finished.
#
# usage: scripts/finetune.sh <benchmark> [gpu id]
# environment: NUM_TASKS, EPOCHS (100), FINETUNE_LR, BATCH_SIZE (32), WEIGHT_DECAY (4e-5), ARCH, LOGFILE, SEED,
#   SEEDS (e.g. "1 2 3", spread over GPUS or SEED_WORKERS), DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT
#   (names the run folder $CKPT_ROOT/baselines/<EXPERIMENT, default the benchmark's name>/finetune_seed<SEED>/<arch>)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/plain_models_lib.sh
source "$REPO_ROOT/scripts/plain_models_lib.sh"

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage_error "usage: $0 <benchmark> [gpu id]"
for_each_seed "$@"
[[ -z ${2:-} ]] || select_gpu "$2"
run_plain_models "$1" finetune "${LOGFILE:-}" from_previous_task
