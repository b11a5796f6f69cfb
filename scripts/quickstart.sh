#!/usr/bin/env bash
# Set up a virtual environment and run CPG on the embedded split_digits benchmark on the CPU
# (five two-class tasks from scikit-learn's bundled digits; no download), then print the table.
# Settings are shortened for a laptop; every one can be overridden through the environment.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv "$REPO_ROOT/requirements.txt"
resolve_roots
export PYTHON DEVICE=${DEVICE:-cpu}
export BATCH_SIZE=${BATCH_SIZE:-16} FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-15} PRUNE_EPOCHS=${PRUNE_EPOCHS:-4}
export RETRAIN_EPOCHS=${RETRAIN_EPOCHS:-5} PRUNING_INTERVAL=${PRUNING_INTERVAL:-2}
export PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-3}
start=$SECONDS
CHILD_IS_DRIVER=1  # cpg.sh says itself where an interrupted run resumes
run_child bash scripts/cpg.sh split_digits "$DATA_ROOT" "${SETTING:-quickstart_mul_1.5}" "${MAX_WIDTH:-1.5}"
say "CPG on split_digits finished in $((SECONDS - start)) s; per-task logs: $CKPT_ROOT/CPG/${EXPERIMENT:-split_digits}/*/*/*/train.log"
