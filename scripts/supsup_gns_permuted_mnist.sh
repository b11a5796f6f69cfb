#!/usr/bin/env bash
# SupSup GNs on PermutedMNIST: the task is given while training and inferred at test time, and the labels are
# shared (10 outputs for every task), as the reference's mnist.ipynb: LeNet 300-100, 5 tasks, one epoch each,
# one-shot task inference from each single test image with the entropy objective (OBJECTIVE h; g needs
# superfluous neurons, so OUTPUT_SIZE above 10), then classification with the inferred task's mask.
# BENCHMARK=permuted_digits runs the same on the embedded 8x8 digits (no download; a quick demo).
#
# usage: scripts/supsup_gns_permuted_mnist.sh [gpu id]   (environment: see scripts/supsup_gnu.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export SCENARIO=gns NUM_TASKS=${NUM_TASKS:-5} EVAL_AT=${EVAL_AT:-} OUTPUT_SIZE=${OUTPUT_SIZE:-10} EPOCHS=${EPOCHS:-1}
exec bash "$REPO_ROOT/scripts/supsup_gnu.sh" "${BENCHMARK:-permuted_mnist}" oneshot "${OBJECTIVE:-h}" "$@"
