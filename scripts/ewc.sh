#!/usr/bin/env bash
# EWC (Kirkpatrick et al. 2017) on any benchmark, task-incremental: a head per task on one plain body, and
# while a task trains, (EWC_LAMBDA / 2) sum_i F_i (theta_i - theta*_i)^2 holds the body near every old task's
# weights theta* in proportion to their diagonal empirical Fisher F, measured on each task's training
# images after it is learned. EWC_ONLINE=1 is online EWC (Schwarz et al. 2018): one running Fisher, decayed by
# EWC_GAMMA, anchored at the latest weights. Ends with the accuracy matrix (metrics.json, accuracy_matrix.png:
# ACC, BWT, forgetting) and the storage, EWC's anchors and Fisher included. Rerunning resumes.
#
# usage: scripts/ewc.sh <benchmark> [setting]
# environment: EWC_LAMBDA (10000), EWC_ONLINE (0 or 1), EWC_GAMMA (1.0), EWC_FISHER_SAMPLES (all), NUM_TASKS,
#   EPOCHS (100), LR (5e-3), BATCH_SIZE (32), WEIGHT_DECAY (4e-5), VAL_FRACTION, ARCH, SEED, DEVICE, DATA_ROOT,
#   CKPT_ROOT, EXPERIMENT, SEEDS (e.g. "1 2 3", spread over GPUS or SEED_WORKERS, then a table)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/regularised_lib.sh
source "$REPO_ROOT/scripts/regularised_lib.sh"

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage_error "usage: $0 <benchmark> [setting]"
require_folder_name setting "${2:-default}"
for_each_seed "$@"
for name in EWC_LAMBDA:10000 EWC_ONLINE:0 EWC_GAMMA:1.0 EWC_FISHER_SAMPLES:; do
  setting "${name%%:*}" "${name#*:}"
done
[[ $EWC_ONLINE == 0 || $EWC_ONLINE == 1 ]] || usage_error "EWC_ONLINE must be 0 or 1, got '$EWC_ONLINE'"
METHOD_FLAGS=(--ewc_lambda "$EWC_LAMBDA" --ewc_gamma "$EWC_GAMMA")
[[ $EWC_ONLINE == 0 ]] || METHOD_FLAGS+=(--ewc_online)
[[ -z $EWC_FISHER_SAMPLES ]] || METHOD_FLAGS+=(--ewc_fisher_samples "$EWC_FISHER_SAMPLES")
LR=${LR:-5e-3}  # at 1e-2 the default lambda's penalty made SGD diverge on one seed (docs/methods/ewc.md)
REG_LABEL=ewc
[[ $EWC_ONLINE == 0 ]] || REG_LABEL=online_ewc
run_regularised ewc EWC "$@"
