#!/usr/bin/env bash
# Methods side by side on the embedded split_digits (five two-class tasks, no download), on the CPU:
# CPG, PackNet, Piggyback, SupSup GG, WSN, HAT, EWC and LwF (a head per task on LeNet; they forget some), the
# sequential finetune baseline (which forgets) and independent models (one per task), SEEDS seeds each, spread
# over SEED_WORKERS one-thread workers. Ends with the comparison table (comparison.md: ACC, BWT, forgetting,
# storage, stage time; mean ± std over seeds), its plot (comparison.png) and each run's own plots. Settings are
# the quickstart's, shortened for a laptop.
# Rerunning after an interruption skips what finished.
#
# usage: scripts/compare_split_digits.sh
# environment: SEEDS ("1 2 3"), SEED_WORKERS (2), CKPT_ROOT (checkpoints/compare_split_digits), DATA_ROOT, DEVICE (cpu),
#   NUM_TASKS, epochs: PLAIN_EPOCHS (15; independent, finetune), FINETUNE_EPOCHS (15), PRUNE_EPOCHS (4),
#   RETRAIN_EPOCHS (5) and SPARSITY_STEPS (CPG, PackNet), BACKBONE_EPOCHS (15), MASK_EPOCHS (10; Piggyback),
#   SUPSUP_EPOCHS (10), WSN_EPOCHS (10), HAT_EPOCHS (30; HAT's schedule may stop a task earlier),
#   REG_EPOCHS (15; EWC, LwF)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 0 ]] || usage_error "usage: $0 (settings through the environment: SEEDS, SEED_WORKERS, CKPT_ROOT)"
require_commands jq "$PYTHON"
CKPT_ROOT=${CKPT_ROOT:-$REPO_ROOT/checkpoints/compare_split_digits}
resolve_roots
export CKPT_ROOT DATA_ROOT DEVICE=${DEVICE:-cpu} SEEDS=${SEEDS:-1 2 3} SEED_WORKERS=${SEED_WORKERS:-2}
export BATCH_SIZE=16
RUN_ROOTS_FILE=$(mktemp)
on_exit "rm -f '$RUN_ROOTS_FILE'"
export RUN_ROOTS_FILE
RUN_ROOT=$CKPT_ROOT  # an interrupted comparison names it on the terminal: the methods' own lines are in their .out
start=$SECONDS

# appended FILE COMMAND...: become COMMAND with its output appended to FILE. Redirecting run_child itself
# would also send the driver's own messages there, a signal's included (its trap runs inside run_child).
appended() { exec "${@:2}" >> "$1" 2>&1; }

# method LABEL COMMAND...: one method's driver over every seed, its time said. Its output is appended to
# CKPT_ROOT/LABEL.out, so a rerun keeps what an interrupted or failed run said.
method() {
  local label=$1 began=$SECONDS
  shift
  say "$label: seeds $SEEDS"
  printf '[%(%F %T)T] %s\n' -1 "$DRIVER_COMMAND" >> "$CKPT_ROOT/$label.out"
  run_child appended "$CKPT_ROOT/$label.out" "$@" || {
    tail -n 20 "$CKPT_ROOT/$label.out" >&2
    die "$label failed (exit $CHILD_RC); its output: $CKPT_ROOT/$label.out"
  }
  say "$label: done in $((SECONDS - began)) s"
}

mkdir -p "$CKPT_ROOT"
CPG_EPOCHS=(FINETUNE_EPOCHS="${FINETUNE_EPOCHS:-15}" PRUNE_EPOCHS="${PRUNE_EPOCHS:-4}"
            RETRAIN_EPOCHS="${RETRAIN_EPOCHS:-5}" PRUNING_INTERVAL=2 PRUNING_FREQUENCY=3)
method independent env EPOCHS="${PLAIN_EPOCHS:-15}" bash scripts/baseline.sh split_digits
method finetune env EPOCHS="${PLAIN_EPOCHS:-15}" bash scripts/finetune.sh split_digits
method cpg env "${CPG_EPOCHS[@]}" bash scripts/cpg.sh split_digits "$DATA_ROOT" compare 1.5
method packnet env "${CPG_EPOCHS[@]}" METHOD=packnet bash scripts/cpg.sh split_digits "$DATA_ROOT" compare 1.0
method piggyback env BACKBONE_EPOCHS="${BACKBONE_EPOCHS:-15}" EPOCHS="${MASK_EPOCHS:-10}" LR=0.05 \
  bash scripts/piggyback.sh split_digits compare
REGULARISED=(EPOCHS="${REG_EPOCHS:-15}" ARCH=lenet_300_100)  # no batch-norm: see docs/methods/ewc.md
method ewc env "${REGULARISED[@]}" bash scripts/ewc.sh split_digits compare
method lwf env "${REGULARISED[@]}" bash scripts/lwf.sh split_digits compare
method supsup_gg env BENCHMARK=split_digits ARCH=lenet_300_100 EPOCHS="${SUPSUP_EPOCHS:-10}" bash scripts/supsup_gg.sh 0
method wsn env EPOCHS="${WSN_EPOCHS:-10}" bash scripts/wsn.sh split_digits compare
method hat env EPOCHS="${HAT_EPOCHS:-30}" bash scripts/hat.sh split_digits compare

if [[ ${LAUNCHER:-local} == slurm ]]; then
  say "every method's seeds were submitted to SLURM (their .out files name the arrays); rerun without LAUNCHER for the table"
  exit 0
fi
mapfile -t roots < <(awk '!seen[$0]++' "$RUN_ROOTS_FILE")
run_child "$PYTHON" -m tools.report --runs "${roots[@]}" --out "$CKPT_ROOT"
say "compared ${#roots[@]} runs in $((SECONDS - start)) s; plots:"
find "$CKPT_ROOT" -name '*.png' | sort
