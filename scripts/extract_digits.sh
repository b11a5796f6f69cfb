#!/usr/bin/env bash
# Expand-and-Cluster on trained digits teachers: for each seed digits_mlp_16 (64-16-10 ReLU) is trained on
# all ten 8x8 digits (digits10, with its 1-pixel random crops: 150 epochs at learning rate 0.05 reach about
# 0.91 test accuracy, with every unit active on part of the images), extracted and compared
# (scripts/extract_trained.sh does the work; its environment variables apply).
# Writes OUT_DIR/seed_<seed>/report.json and prints the table of seeds (OUT_DIR/seeds.md).
# Usage: scripts/extract_digits.sh [OUT_DIR]   (default $CKPT_ROOT/extract/<EXPERIMENT, default digits>)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [output folder]"
resolve_roots  # here too, so a bad data root is reported under this script's name
TEACHER_EPOCHS=${TEACHER_EPOCHS:-150} exec bash "$REPO_ROOT/scripts/extract_trained.sh" \
  digits10 digits10 digits_mlp_16 "${1:-$CKPT_ROOT/extract/${EXPERIMENT:-digits}}"
