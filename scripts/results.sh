#!/usr/bin/env bash
# Regenerate the docs' results: each NAME runs its experiment in a fresh checkpoint folder on the CPU and
# writes docs/results/NAME.md (the table, this command, the commit and the date) with its figures, and the
# copy on the page that shows it (tools/results.py); the fast tests fail while a page differs from them.
# Commit the code first: a result made on a tree with uncommitted changes says so.
#
#   quickstart    scripts/quickstart.sh: CPG on split_digits, its per-task table (under a minute)
#   compare       scripts/compare_split_digits.sh: ten methods, three seeds each (about 15 minutes)
#   gg_baselines  SupSup GG and its six baselines on 10 permuted_digits tasks, three seeds each (about 2 minutes)
#
# usage: scripts/results.sh [NAME...]   (default: all of them)
# environment: KEEP (a folder to keep the runs in; default a temporary folder, removed at the end)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL=(quickstart compare gg_baselines)
names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
for name in "${names[@]}"; do
  [[ " ${ALL[*]} " == *" $name "* ]] || usage_error "unknown result '$name' (choose from ${ALL[*]})"
done
require_python
if [[ -n ${KEEP:-} ]]; then
  WORK=$(realpath -m "$KEEP")
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d)
  on_exit "rm -rf '$WORK'"
fi
export DEVICE=cpu

# record NAME ARGS...: tools.results write NAME, naming this script's command for it.
record() {
  local name=$1
  shift
  run_child "$PYTHON" -m tools.results write "$name" --command "bash scripts/results.sh $name" "$@"
}

results_quickstart() {
  CKPT_ROOT="$WORK/quickstart" run_child bash "$REPO_ROOT/scripts/quickstart.sh"
  record quickstart --summary "$WORK/quickstart/CPG/split_digits/quickstart_mul_1.5_seed1/digits_convnet/summary.json"
}

results_compare() {
  CKPT_ROOT="$WORK/compare" run_child bash "$REPO_ROOT/scripts/compare_split_digits.sh"
  record compare --table "$WORK/compare/comparison.md" --figure "$WORK/compare/comparison.png" \
    --figure "$WORK/compare/baselines/split_digits/finetune_seed1/digits_convnet/accuracy_matrix.png"
}

results_gg_baselines() {
  local baseline
  for baseline in supsup upper_bound separate_heads separate_heads_randw batche batche_randw transfer; do
    BASELINE=$baseline SEEDS="1 2 3" SEED_WORKERS=2 BENCHMARK=permuted_digits NUM_TASKS=10 EPOCHS=30 \
      CKPT_ROOT="$WORK/gg" run_child bash "$REPO_ROOT/scripts/supsup_gg.sh" 0
  done
  local roots=() name
  for name in er32 transfer_er32 batche_randw batche upper_bound separate_heads_randw separate_heads; do
    roots+=("$WORK"/gg/SupSup/permuted_digits/gg_"${name}"_seed*/lenet_300_100)
  done
  run_child "$PYTHON" -m tools.report --runs "${roots[@]}" --out "$WORK/gg/table"
  record gg_baselines --table "$WORK/gg/table/comparison.md" --figure "$WORK/gg/table/comparison.png"
}

CHILD_IS_DRIVER=1  # each experiment's driver says itself where an interrupted run resumes
for name in "${names[@]}"; do
  say "$name"
  "results_$name"
done
