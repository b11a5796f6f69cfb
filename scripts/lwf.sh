#!/usr/bin/env bash
# LwF, Learning without Forgetting (Li and Hoiem 2016), on any benchmark, task-incremental: a head per task on
# one plain body. Each new task first trains its head alone for LWF_WARMUP_EPOCHS (the paper's warm-up), then
# trains the body, its own parts and the old heads on its cross-entropy plus LWF_LAMBDA times the
# distillation (temperature LWF_TEMPERATURE) of every old head's outputs on the new images to the outputs the
# network gave before the task. Ends with the accuracy matrix (metrics.json, accuracy_matrix.png: ACC, BWT,
# forgetting) and the storage. Rerunning resumes.
#
# usage: scripts/lwf.sh <benchmark> [setting]
# environment: LWF_LAMBDA (1), LWF_TEMPERATURE (2), LWF_WARMUP_EPOCHS (5), NUM_TASKS, EPOCHS (100), LR (1e-2),
#   BATCH_SIZE (32), WEIGHT_DECAY (4e-5), VAL_FRACTION, ARCH, SEED, DEVICE, DATA_ROOT, CKPT_ROOT, EXPERIMENT,
#   SEEDS (e.g. "1 2 3", spread over GPUS or SEED_WORKERS, then a table)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/regularised_lib.sh
source "$REPO_ROOT/scripts/regularised_lib.sh"

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage_error "usage: $0 <benchmark> [setting]"
require_folder_name setting "${2:-default}"
for_each_seed "$@"
for name in LWF_LAMBDA:1 LWF_TEMPERATURE:2 LWF_WARMUP_EPOCHS:5; do
  setting "${name%%:*}" "${name#*:}"
done
METHOD_FLAGS=(--lwf_lambda "$LWF_LAMBDA" --lwf_temperature "$LWF_TEMPERATURE" --lwf_warmup_epochs "$LWF_WARMUP_EPOCHS")
REG_LABEL=lwf
run_regularised lwf LwF "$@"
