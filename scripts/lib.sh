#!/usr/bin/env bash
# Shared helpers of the drivers: messages, float arithmetic (awk; no bc on GPU hosts),
# JSON via jq, and resumable stages. Source it; it sets strict mode.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
usage_error() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 64; }

require_commands() {
  local command
  for command in "$@"; do
    command -v "$command" >/dev/null 2>&1 || die "'$command' is needed but not installed"
  done
}

# Float arithmetic and comparisons, printed in the short form Python and record.txt use (0.1, 0.95, 1.5).
float_add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.10g\n", a + b }'; }
float_min() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.10g\n", (a < b ? a : b) }'; }
float_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 1e-9 >= b) }'; }

# json_get FILE FILTER: one value from a JSON file.
json_get() { jq -er "$2" "$1"; }

# log_decision LOG key=value...: the driver's decisions go into the task's train.log too.
log_decision() {
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  printf '%s stage=driver %s\n' "$(date +%Y-%m-%dT%H:%M:%S)" "$*" | tee -a "$log"
}

# run_stage NAME MARKER_DIR LOG ALLOWED_CODES COMMAND...
# Runs COMMAND unless MARKER_DIR/NAME records that it finished before, and sets STAGE_RC to its state code.
# Only state codes in ALLOWED_CODES are recorded, so a crash or a kill is redone on the next run.
# Exit 3 (no accuracy goal) stops the driver with advice; any other unexpected code stops it too.
run_stage() {
  local name=$1 marker_dir=$2 log=$3 allowed=$4; shift 4
  local marker="$marker_dir/$name"
  if [[ -f $marker ]]; then
    STAGE_RC=$(<"$marker")
    say "$name: done before (exit $STAGE_RC), skipped"
    return 0
  fi
  say "$name: running"
  set +e
  "$@"
  STAGE_RC=$?
  set -e
  if [[ " $allowed " == *" $STAGE_RC "* ]]; then
    mkdir -p "$marker_dir"
    printf '%s\n' "$STAGE_RC" > "$marker.tmp"
    mv "$marker.tmp" "$marker"
    return 0
  fi
  if [[ $STAGE_RC -eq 3 ]]; then
    printf 'Stopped: stage %s has no accuracy goal. Train baselines (scripts/baseline_*.sh) or write a JSON file\n' "$name" >&2
    printf 'mapping each task name to its goal, and point GOALS at it. Log: %s\n' "$log" >&2
    exit 3
  fi
  die "stage $name exited with unexpected code $STAGE_RC; see $log"
}

# ensure_venv REQUIREMENTS_FILE: create $VENV (default .venv) once and install the requirements when
# they changed since the last install; afterwards PYTHON is the environment's interpreter.
ensure_venv() {
  local requirements=$1
  local venv=${VENV:-$REPO_ROOT/.venv}
  local stamp
  stamp="$venv/.installed-$(basename "$requirements")"
  if [[ ! -x $venv/bin/python ]]; then
    say "creating the virtual environment $venv"
    python3 -m venv "$venv"
  fi
  local wanted
  wanted=$(cat "$REPO_ROOT/requirements.txt" "$requirements" | sha256sum | cut -d' ' -f1)
  if [[ ! -f $stamp || $(<"$stamp") != "$wanted" ]]; then
    say "installing $(basename "$requirements") into $venv (the first time takes a few minutes)"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
    printf '%s\n' "$wanted" > "$stamp"
  fi
  PYTHON="$venv/bin/python"
  export PATH="$venv/bin:$PATH"
}
