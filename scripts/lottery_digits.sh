#!/usr/bin/env bash
# Lottery tickets on the embedded digits (all ten classes, 8x8 images): scripts/lottery.sh on digits10
# with a LeNet-300-100 (the lottery-ticket papers' MNIST net) unless ARCH names another, e.g.
# ARCH=digits_convnet for the conv net with batch-norm.
# usage: scripts/lottery_digits.sh   (environment: as scripts/lottery.sh)
ARCH=${ARCH:-lenet_300_100} exec "$(dirname "${BASH_SOURCE[0]}")/lottery.sh" digits10 "$@"
