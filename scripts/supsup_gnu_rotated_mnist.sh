#!/usr/bin/env bash
# SupSup GNu on RotatedMNIST: FC 1024-1024 with 200 outputs, 36 rotations 10 degrees apart, binary
# search task inference on whole test batches of 128 images with the entropy objective, as the reference.
# BENCHMARK names another benchmark (a spec file too).
#
# usage: scripts/supsup_gnu_rotated_mnist.sh [gpu id]   (environment: see scripts/supsup_gnu.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export NUM_TASKS=${NUM_TASKS:-36} EVAL_AT=${EVAL_AT:-2 5 10 15 20 25 30 35} OUTPUT_SIZE=${OUTPUT_SIZE:-200}
export INFER_BATCH=${INFER_BATCH:-128} ARCH=${ARCH:-fc_1024_1024}
exec bash "$REPO_ROOT/scripts/supsup_gnu.sh" "${BENCHMARK:-rotated_mnist}" binary "${OBJECTIVE:-h}" "$@"
