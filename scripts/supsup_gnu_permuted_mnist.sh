#!/usr/bin/env bash
# SupSup GNu on PermutedMNIST: LeNet 300-100 with 100 outputs (10 classes + 90 superfluous neurons),
# 250 tasks, one-shot task inference from each single test image (OBJECTIVE g or h).
# BENCHMARK=permuted_digits runs the same on the embedded 8x8 digits (no download; a quick demo).
#
# usage: scripts/supsup_gnu_permuted_mnist.sh [gpu id]   (environment: see scripts/supsup_gnu.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export NUM_TASKS=${NUM_TASKS:-250} EVAL_AT=${EVAL_AT:-10 50 100 150 200} OUTPUT_SIZE=${OUTPUT_SIZE:-100}
exec bash "$REPO_ROOT/scripts/supsup_gnu.sh" "${BENCHMARK:-permuted_mnist}" oneshot "${OBJECTIVE:-g}" "$@"
