#!/usr/bin/env bash
# Baselines of any benchmark: one plain model per task, each trained on its own from scratch (lr 1e-2,
# EPOCHS epochs); their test accuracies are written to an accuracy-goal file (default
# logs/baseline_<benchmark>_acc.json) that cpg.sh takes as GOALS, and the run's accuracy matrix (nothing
# forgets: each row is constant) to metrics.json. Rerunning skips the tasks that finished.
#
# usage: scripts/baseline.sh <benchmark> [gpu id]
# environment: NUM_TASKS, EPOCHS (100), BATCH_SIZE (32), WEIGHT_DECAY (4e-5), ARCH (the benchmark's default),
#   LOGFILE (default logs/baseline_<benchmark>_acc.json; for a seed other than 1 ..._seed<seed>_acc.json), SEED (1),
#   SEEDS (e.g. "1 2 3": one run each, spread over GPUS or SEED_WORKERS), DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT
#   (names the run folder $CKPT_ROOT/baselines/<EXPERIMENT, default the benchmark's name>/baseline_seed<SEED>/<arch>)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/plain_models_lib.sh
source "$REPO_ROOT/scripts/plain_models_lib.sh"

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage_error "usage: $0 <benchmark> [gpu id]"
for_each_seed "$@"
[[ -z ${2:-} ]] || select_gpu "$2"
run_plain_models "$1" baseline "${LOGFILE:-}" from_scratch
