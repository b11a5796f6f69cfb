#!/usr/bin/env bash
# The GPU check, one command for a machine with a CUDA device (under 8 minutes on one H100): the GPU-marked
# tests, tools.bench's plain, default and fast (bf16, channels-last, CUDA graph) variants on synthetic_cifar,
# one full CPG driver task on synthetic_cifar, the whole-run ratio (tools.bench_run) on the GPU, and a
# two-rank torchrun stage when two GPUs exist. It writes one Markdown report (docs/performance.md#the-gpu-check
# describes it) and prints its path last. Without a CUDA device: one line, exit 64.
#
# usage: scripts/gpu_check.sh [report.md]   (default logs/gpu_check_<date>_<time>.md)
# environment: STEP_SECONDS (each step's time limit, 150), CUDA_VISIBLE_DEVICES
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# <= 1)) || usage_error "usage: $0 [report.md]"
STEP_SECONDS=${STEP_SECONDS:-150}
[[ $STEP_SECONDS =~ ^[1-9][0-9]*$ ]] || usage_error "STEP_SECONDS must be a whole number of seconds, got '$STEP_SECONDS'"
require_commands timeout "$PYTHON"
require_python
cuda_count=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null) \
  || cuda_count=0
[[ $cuda_count =~ ^[0-9]+$ ]] || cuda_count=0
((cuda_count > 0)) || usage_error "no CUDA device here (torch sees none); run it on a machine with a GPU"

cd "$REPO_ROOT" || exit 1
printf -v default_report 'logs/gpu_check_%(%Y%m%d_%H%M%S)T.md' -1
REPORT=$(realpath -m "${1:-$default_report}")
mkdir -p "$(dirname "$REPORT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DATA_ROOT=$WORK/data
mkdir -p "$DATA_ROOT"
STEPS=()
FENCE='```'

# step NAME COMMAND...: run COMMAND under the time limit, its output into the report; a failure is reported, not fatal.
step() {
  local name=$1 started code=0 seconds
  shift
  say "$name: running"
  started=$EPOCHREALTIME
  timeout --signal=TERM --kill-after=10 "$STEP_SECONDS" "$@" > "$WORK/$name.out" 2>&1 || code=$?
  seconds=$(awk -v end="$EPOCHREALTIME" -v start="$started" 'BEGIN { printf "%.1f", end - start }')
  local status=ok
  ((code == 0)) || status="failed (exit $code)"
  ((code != 124)) || status="timed out after $STEP_SECONDS s"
  STEPS+=("| $name | $status | $seconds |")
  say "$name: $status in $seconds s"
  {
    printf '\n## %s\n\n%s: %s in %s s\n\n%s\n' "$name" "$*" "$status" "$seconds" "$FENCE"
    tail -n 40 "$WORK/$name.out"
    printf '%s\n' "$FENCE"
  } >> "$WORK/sections.md"
}

step gpu_tests "$PYTHON" -m pytest -q -p no:xdist -m gpu tests
step bench "$PYTHON" -m tools.bench --benchmark synthetic_cifar --device cuda --epochs 3 --variant plain=--plain \
  --variant default= --variant "fast=--bf16 --channels_last --cuda_graph" --work "$WORK/bench" --out "$WORK/bench.json"
step cpg_task env NUM_TASKS=1 DEVICE=cuda CKPT_ROOT="$WORK/ckpt" bash scripts/cpg.sh synthetic_cifar "$DATA_ROOT" \
  gpu_check 1.5
step whole_run_ratio "$PYTHON" -m tools.bench_run --device cuda --repeats 1 --method cpg --work "$WORK/bench_run"
if ((cuda_count >= 2)); then
  step torchrun_two_ranks env GPUS=0,1 NUM_TASKS=1 FINETUNE_EPOCHS=2 PRUNE_EPOCHS=2 RETRAIN_EPOCHS=1 \
    SPARSITY_STEPS=0.5 CKPT_ROOT="$WORK/ckpt2" bash scripts/cpg.sh synthetic_cifar "$DATA_ROOT" two_ranks 1.5
else
  STEPS+=("| torchrun_two_ranks | skipped: one GPU | |")
fi

device=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA",
  torch.version.cuda)')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf '# GPU check\n\n'
  printf -- '- date: %(%FT%T%z)T\n- commit: %s\n- device: %s (%s visible)\n- step limit: %s s\n\n' -1 "$commit" \
    "$device" "$cuda_count" "$STEP_SECONDS"
  printf 'Design targets (one H100, synthetic_cifar, VGG16, 2,500 images, batch 32): finetune epoch with evaluation'
  printf ' <= 0.25 s, 20-epoch prune stage <= 6 s, process start to first step <= 3 s (the bench table below).\n\n'
  printf '| step | status | seconds |\n|---|---|---|\n'
  printf '%s\n' "${STEPS[@]}"
  cat "$WORK/sections.md"
} > "$REPORT"
say "report: $REPORT"
printf '%s\n' "$REPORT"
