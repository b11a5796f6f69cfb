#!/usr/bin/env bash
# Expand-and-Cluster on trained digits teachers: for each seed digits_mlp_16 (64-16-10 ReLU) is trained on
# all ten 8x8 digits (benchmark digits10_plain: no random crops, which cap such a small network near 90%),
# extracted and compared (scripts/extract_trained.sh does the work; its environment variables apply).
# Writes OUT_DIR/seed_<seed>/report.json and prints the table of seeds (OUT_DIR/seeds.md).
# Usage: scripts/extract_digits.sh [OUT_DIR]
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [output folder]"
# teachers train at learning rate 0.01: at 0.05 some of the 16 units die (never active on any image)
TEACHER_LR=${TEACHER_LR:-0.01} exec bash "$REPO_ROOT/scripts/extract_trained.sh" digits10_plain digits10 digits_mlp_16 \
  "${1:-$REPO_ROOT/checkpoints/extract/digits}"
