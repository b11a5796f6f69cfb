#!/usr/bin/env bash
# Expand-and-Cluster on trained MNIST teachers: for each seed mnist_mlp_32 (784-32-10, one hidden layer)
# and mnist_mlp_32_16 (784-32-16-10, two hidden layers) are trained on MNIST, extracted and compared
# (scripts/extract_trained.sh does the work; its environment variables apply). MNIST must be in
# DATA_ROOT/MNIST/raw (torchvision's files); without it the first stage stops with one line saying so.
# Writes OUT_DIR/{shallow,deep}/seed_<seed>/report.json and prints each table of seeds.
# Usage: scripts/extract_mnist.sh [OUT_DIR]   (default $CKPT_ROOT/extract/<EXPERIMENT, default mnist>; environment:
#        DEPTHS="shallow deep" and extract_trained.sh's)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [output folder]"
resolve_roots  # here too, so a bad data root is reported under this script's name
out=$(realpath -m "${1:-$CKPT_ROOT/extract/${EXPERIMENT:-mnist}}")
for depth in ${DEPTHS:-shallow deep}; do
  case $depth in
    shallow) arch=mnist_mlp_32 ;;
    deep) arch=mnist_mlp_32_16 ;;
    *) usage_error "DEPTHS holds shallow and/or deep, got '$depth'" ;;
  esac
  say "$depth teacher ($arch)"
  bash "$REPO_ROOT/scripts/extract_trained.sh" mnist mnist "$arch" "$out/$depth" || exit
done
