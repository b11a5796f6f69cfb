#!/usr/bin/env bash
# Messages and input checks (part of scripts/lib.sh): say, die, require_*, float arithmetic (awk; no bc on GPUs).

say() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }  # bash's own clock: a driver says a line per stage
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
usage_error() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 64; }

# require_python: stop with one line saying how to make the environment when neither PYTHON nor .venv was
# there and python from PATH has no torch (checked without importing it).
require_python() {
  [[ $PYTHON_ORIGIN == path ]] || return 0
  if command -v "$PYTHON" >/dev/null 2>&1 &&
    "$PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null; then
    PYTHON_ORIGIN=checked
    return 0
  fi
  usage_error "no Python with torch (no $REPO_ROOT/.venv, and python on PATH lacks torch): make the environment" \
    "with 'bash scripts/quickstart.sh' or 'python3 -m venv .venv && .venv/bin/pip install -r requirements.txt'" \
    "in $REPO_ROOT, or set PYTHON to an interpreter that has torch"
}

require_commands() {
  local command
  for command in "$@"; do
    [[ $command != "$PYTHON" ]] || require_python  # its own advice when python is missing or lacks torch
    command -v "$command" >/dev/null 2>&1 || die "'$command' is needed but not installed"
  done
}

# Float arithmetic and comparisons, printed in the short form Python and record.txt use (0.1, 0.95, 1.5).
float_add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.10g\n", a + b }'; }
float_min() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.10g\n", (a < b ? a : b) }'; }
float_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 1e-9 >= b) }'; }
float_gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b + 1e-9) }'; }

# Checks of the numbers a driver computes with, so that a bad value stops it with one line and exit 64
# instead of an "unbound variable", a loop that never ends or, in bash arithmetic, an evaluated expression.
# is_number VALUE: a finite decimal number (nan, inf, 1e999, hex and words are not), checked by awk.
is_number() {
  awk -v x="$1" 'BEGIN {
    if (x !~ /^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$/) exit 1
    v = x + 0  # 1e999 reads as inf; comparisons, unlike v - v == 0 in mawk, also turn NaN away
    exit !(v > -1e308 && v < 1e308)
  }'
}
# require_count NAME VALUE MAX: VALUE is a whole number from 1 to MAX (no sign, no leading zero: bash
# would read 010 as octal).
require_count() {
  if [[ ! $2 =~ ^[1-9][0-9]{0,8}$ ]] || (($2 > $3)); then
    usage_error "$1 must be a whole number from 1 to $3, got '$2'"
  fi
}
