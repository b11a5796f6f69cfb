#!/usr/bin/env bash
# Learn a simplex of networks (VERTICES vertices, default 3) in one training run, then report accuracy
# along alpha, the (alpha, 1 - alpha) ensembles, the midpoint and ECE (sweep.csv, sweep.png, summary.json).
#
# usage: scripts/subspace_simplex.sh [benchmark] [task]   (default: the embedded digits10)
# environment: see run_subspace in scripts/subspace_lib.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/subspace_lib.sh
source "$REPO_ROOT/scripts/subspace_lib.sh"
run_subspace simplex "$@"
