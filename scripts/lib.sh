#!/usr/bin/env bash
# Shared helpers of the drivers: messages, input checks, float arithmetic (awk; no bc on GPU hosts),
# JSON via jq, and resumable stages that stop with their driver. Source it; it sets strict mode and the
# traps that turn SIGINT, SIGTERM and SIGHUP into a clean stop that a rerun resumes.
set -euo pipefail

REPO_ROOT=$(dirname "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$REPO_ROOT/.." && pwd)
# The interpreter: PYTHON when set, else the project's environment (.venv, as quickstart.sh and test.sh
# make it), else python from PATH, which require_python checks for torch before a driver relies on it.
if [[ -n ${PYTHON:-} ]]; then
  PYTHON_ORIGIN=given
elif [[ -x $REPO_ROOT/.venv/bin/python ]]; then
  PYTHON=$REPO_ROOT/.venv/bin/python
  PYTHON_ORIGIN=venv
else
  PYTHON=python
  PYTHON_ORIGIN=path
fi
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
DRIVER_PID=$$
printf -v DRIVER_COMMAND '%q ' "$0" "$@"  # sourced without arguments, "$@" is the driver's
DRIVER_COMMAND=${DRIVER_COMMAND% }

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

# resolve_roots: check the interpreter (require_python), then DATA_ROOT (default data/) and CKPT_ROOT
# (default checkpoints/) as absolute paths, and work from the repository root. A DATA_ROOT the user gave
# must exist (a typo must not train elsewhere); the default is created, as a fresh clone has none and the
# embedded benchmarks need no files in it.
resolve_roots() {
  require_python
  if [[ -n ${DATA_ROOT:-} ]]; then
    [[ -d $DATA_ROOT ]] || usage_error "data root $DATA_ROOT does not exist"
  else
    DATA_ROOT=$REPO_ROOT/data
    mkdir -p "$DATA_ROOT"
  fi
  DATA_ROOT=$(realpath "$DATA_ROOT")
  CKPT_ROOT=$(realpath -m "${CKPT_ROOT:-$REPO_ROOT/checkpoints}")
  cd "$REPO_ROOT" || exit 1
}

# benchmark_tasks BENCHMARK: TASKS, its task names in learning order; an unknown name is one line, exit 64.
benchmark_tasks() {
  local names
  if ! names=$("$PYTHON" -m tools.list_tasks "$1" 2>&1); then
    [[ $names == *"invalid choice"* ]] || usage_error "cannot list the tasks of benchmark '$1': ${names##*$'\n'}"
    usage_error "unknown benchmark '$1' (choose from ${names##*choose from }"
  fi
  mapfile -t TASKS <<< "$names"
}

# load_benchmark BENCHMARK: TASKS (names in learning order), ARCH (unless set) and NUM_TASKS (unless
# set; checked against the number of tasks) for the drivers.
load_benchmark() {
  benchmark_tasks "$1"
  ARCH=${ARCH:-$("$PYTHON" -m tools.list_tasks "$1" --arch)}
  NUM_TASKS=${NUM_TASKS:-${#TASKS[@]}}
  require_count NUM_TASKS "$NUM_TASKS" "${#TASKS[@]}"
}

# gpu_found: whether an NVIDIA GPU is there (nvidia-smi lists one).
gpu_found() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

# limit_cpu_threads: for a CPU run (DEVICE=cpu, or DEVICE auto with no GPU to be seen) one thread per
# stage for torch, OpenMP and MKL unless OMP_NUM_THREADS / MKL_NUM_THREADS say otherwise. The nets that run
# on a CPU here are tiny, so a second thread gains little, while on a busy machine torch's default (a
# thread per core) waits on the other work: on 2 shared cores, a two-task CPG run of the quickstart's size
# took 9.3-14 s with one thread and 8.9-65 s with two (docs/results/measured/performance.md).
limit_cpu_threads() {
  case ${DEVICE:-auto} in
    cpu) ;;
    auto) [[ ${CUDA_VISIBLE_DEVICES-unset} == @(|-1) ]] || ! gpu_found || return 0 ;;
    *) return 0 ;;
  esac
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
}

# select_gpu ID: run on GPU ID (CUDA_VISIBLE_DEVICES); warn and use the CPU when there is none.
select_gpu() {
  [[ $# -ge 1 && -n $1 ]] || usage_error "usage: $0 <gpu id>"
  [[ $1 =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "GPU id must be a number like 0 (or a list like 0,1), got '$1'"
  export CUDA_VISIBLE_DEVICES=$1
  if [[ ${DEVICE:-} != cpu ]] && ! gpu_found; then  # no warning when the CPU is what was asked for
    printf 'warning: no NVIDIA GPU found; running on the CPU, which is far slower\n' >&2
    export DEVICE=${DEVICE:-cpu}
  fi
}

# on_exit COMMAND: evaluate COMMAND when the driver exits. One EXIT trap runs every registered command,
# newest first, so the helpers' and the driver's own cleanups add up instead of replacing each other.
EXIT_ACTIONS=()
on_exit() {
  EXIT_ACTIONS+=("$1")
  trap run_exit_actions EXIT
}
run_exit_actions() {
  local i
  for ((i = ${#EXIT_ACTIONS[@]} - 1; i >= 0; i--)); do
    eval "${EXIT_ACTIONS[i]}" || true  # a failed cleanup must not skip the others
  done
}

# Signals. Bash 5.2 may run a trap in the middle of parsing a command substitution and then fails to parse
# the trap ("unexpected EOF while looking for matching `)'"): that happens when one command holds two
# substitutions, so in these scripts no command holds more than one (tests/test_driver_signals.py checks).
# A stage runs as a background child that the driver waits for (run_child), so a signal reaches
# the driver's trap at once instead of after the stage: the trap stops the running children (TERM, then
# KILL after 10 s), says in one line that the same command resumes, and exits 128 + the signal's number
# (130 for SIGINT, 143 for SIGTERM); the EXIT actions still run. A driver killed outright (SIGKILL runs no
# trap) is noticed by each child's watcher, which stops the child within half a second.
CHILD_PIDS=()      # what a signal must stop: the running stage, or the workers of supsup_gg.sh
WATCHER_PIDS=()
RUN_ROOT=""        # named in the interruption message (lock_run_root sets it)
CHILD_IS_DRIVER=0  # the child is a driver that names its own run folder (quickstart.sh)

on_signal() {
  trap '' INT TERM HUP  # a second Ctrl-C must not cut the clean-up short
  stop_children
  if ((!CHILD_IS_DRIVER)); then
    printf '%s: interrupted by SIG%s; run the same command again to resume%s\n' "$(basename "$0")" "$1" \
      "${RUN_ROOT:+ (run folder $RUN_ROOT)}" >&2
  fi
  exit "$2"
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# process_alive PID: whether PID runs (a zombie, dead but not yet reaped, does not).
process_alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 0  # no /proc: kill -0 is all there is
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# stop_children: TERM to every running child, KILL to one still there after 10 s, and reap them.
stop_children() {
  local pid tries alive
  ((${#CHILD_PIDS[@]} + ${#WATCHER_PIDS[@]})) || return 0
  kill -TERM "${CHILD_PIDS[@]}" "${WATCHER_PIDS[@]}" 2>/dev/null || true
  for ((tries = 0; tries < 100; tries++)); do
    alive=0
    for pid in "${CHILD_PIDS[@]}"; do
      process_alive "$pid" && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "${CHILD_PIDS[@]}" 2>/dev/null || true
  wait "${CHILD_PIDS[@]}" "${WATCHER_PIDS[@]}" 2>/dev/null || true
  CHILD_PIDS=()
  WATCHER_PIDS=()
}

# watch_driver PID: run in the background; TERM to PID once the driver is gone. Polls twice a second with
# bash builtins only (read -t on a pipe that never delivers), so it starts no process while it waits.
watch_driver() {
  trap - INT TERM HUP EXIT
  local child=$1 tick
  exec {tick}<> <(:)
  wait "$!" 2>/dev/null || true  # reap the process substitution, which ends at once
  while process_alive "$DRIVER_PID" && process_alive "$child"; do
    read -r -t 0.5 -u "$tick" _ || true
  done
  if process_alive "$child"; then
    kill -TERM "$child" 2>/dev/null || true
  fi
  exit 0
}

# leave_if_orphaned: in a worker shell (spread_over_gpus) whose driver was killed outright, exit without a
# word: the worker must start no further stage, and the code of the one its watcher stopped is no outcome to
# report (the user would read "unexpected code" after a kill -9). 137 is the driver's own code, 128 + SIGKILL.
leave_if_orphaned() {
  ((BASHPID == DRIVER_PID)) || process_alive "$DRIVER_PID" || exit 137
}

# run_child COMMAND...: run COMMAND so that it stops with the driver, whatever stops the driver; sets
# CHILD_RC to its exit code and returns it. Its standard input is /dev/null and SIGINT does not reach it
# directly (bash runs background commands so): the driver's trap stops it.
run_child() {
  local pid watcher kept=() other
  leave_if_orphaned
  "$@" &
  pid=$!
  CHILD_PIDS+=("$pid")
  watch_driver "$pid" &
  watcher=$!
  WATCHER_PIDS+=("$watcher")
  CHILD_RC=0
  wait "$pid" || CHILD_RC=$?
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  for other in "${CHILD_PIDS[@]}"; do
    [[ $other == "$pid" ]] || kept+=("$other")
  done
  CHILD_PIDS=("${kept[@]}")
  kept=()
  for other in "${WATCHER_PIDS[@]}"; do
    [[ $other == "$watcher" ]] || kept+=("$other")
  done
  WATCHER_PIDS=("${kept[@]}")
  leave_if_orphaned
  return "$CHILD_RC"
}

# lock_run_root ROOT: hold the run folder ROOT (created if missing) for this driver, so two drivers never
# run on one folder: a second one stops with exit 64 naming the process that holds it. The lock is flock
# on ROOT/.lock, held by the driver and inherited by its stages (not by the warm-start server, which closes
# it); the kernel drops it when the last of them is gone, so a killed run leaves no stale lock. The file
# names its holder while a driver runs (begin_run writes that line once the settings are checked; the
# driver's exit empties it), so a line naming a dead driver means one that was killed: its folder is taken
# over with one line, once its last stage, which a watcher stops within half a second, is gone.
lock_run_root() {
  local root=$1 lock holder="" problem
  require_commands flock
  problem=$(mkdir -p -- "$root" 2>&1) || usage_error "cannot create the run folder $root: ${problem##*: }"
  lock="$root/.lock"
  { exec {LOCK_FD}>>"$lock"; } 2>/dev/null || usage_error "cannot write the lock file $lock in the run folder" \
    "(a read-only folder or file system?); give the run a writable CKPT_ROOT"
  { read -r holder < "$lock"; } 2>/dev/null || true
  if [[ $holder =~ ^pid\ ([0-9]+) ]] && ! process_alive "${BASH_REMATCH[1]}"; then
    flock -w 30 "$LOCK_FD" || usage_error "run folder $root is still in use by what is left of the killed driver" \
      "${BASH_REMATCH[1]}; stop those processes first"
    say "taking over run folder $root from the killed driver ${BASH_REMATCH[1]}"
  elif ! flock -n "$LOCK_FD"; then
    usage_error "run folder $root is in use by ${holder:-another process}; wait for it to end or stop it first"
  fi
  RUN_ROOT=$root
}

# setting NAME [DEFAULT]: NAME is one of the run's settings: its value from the environment, else DEFAULT.
# begin_run records every setting declared so far, so a driver declares each one it reads or passes on.
RUN_SETTINGS=()
setting() {
  [[ -n ${!1:-} ]] || printf -v "$1" '%s' "${2-}"
  RUN_SETTINGS+=("$1")
}

# begin_run ROOT: hold the run folder ROOT (lock_run_root) and make it this run's: the first run records its
# settings (those declared with `setting`, what identifies BENCHMARK's data and the content of GOALS) and the
# code version in ROOT/run_settings.json; a rerun with the same settings resumes, one with other settings
# stops with exit 64 before any stage, a line per differing setting (tools/run_settings.py).
begin_run() {
  local pairs=() name identity=()
  lock_run_root "$1"
  for name in "${RUN_SETTINGS[@]}"; do
    pairs+=("$name=${!name}")
  done
  [[ -z ${BENCHMARK:-} ]] || identity+=(--benchmark "$BENCHMARK" --data_root "${DATA_ROOT:-$REPO_ROOT/data}")
  [[ -z ${GOALS:-} ]] || identity+=(--goals "$GOALS")
  "$PYTHON" -m tools.run_settings "$1" --driver "$(basename "$0")" --command "$DRIVER_COMMAND" "${identity[@]}" \
    --settings "${pairs[@]}" || exit "$?"
  printf 'pid %s: %s\n' "$DRIVER_PID" "$DRIVER_COMMAND" > "$1/.lock"  # after the check: a refused run changes nothing
  printf -v name ': > %q' "$1/.lock"
  on_exit "$name"  # the line is left only by a driver killed outright
}

# start_stage_server: run the stages in children forked from one warm interpreter that has imported
# torch and CPG's stages once (utils/warm_start.py), saving about 1.5 s a stage; FAST_START=0 turns it
# off. The server goes when the driver exits; without it main_normal.py simply runs in its own process.
# Its two halves: launch_stage_server [METHOD...] (the methods whose stages to import, default cpg), then
# await_stage_server, for a driver with other work to do while the server imports.
start_stage_server() {
  launch_stage_server cpg
  await_stage_server
}

launch_stage_server() {
  [[ ${FAST_START:-1} == 1 ]] || return 0
  use_gpus
  ((STAGE_RANKS == 1)) || return 0  # torchrun starts its own processes
  local method methods=() parent=$BASHPID  # read here: in the command below it would be the child's own pid
  for method in "${@:-cpg}"; do
    methods+=(--method "$method")
  done
  STAGE_SERVER_DIR=$(mktemp -d)
  export CPG_STAGE_SERVER="$STAGE_SERVER_DIR/stages.sock" CPG_STAGE_CPU="$STAGE_SERVER_DIR/stage.cpu"
  "$PYTHON" -m utils.warm_start --socket "$CPG_STAGE_SERVER" --parent "$parent" "${methods[@]}" &
  STAGE_SERVER_PID=$!
  local cleanup
  printf -v cleanup 'kill %q 2>/dev/null; wait %q 2>/dev/null; rm -rf %q' "$STAGE_SERVER_PID" "$STAGE_SERVER_PID" \
    "$STAGE_SERVER_DIR"
  on_exit "$cleanup"
}

# await_stage_server: wait until the launched server listens (it may take a while to import torch).
await_stage_server() {
  [[ -n ${CPG_STAGE_SERVER:-} && -n ${STAGE_SERVER_PID:-} ]] || return 0
  local tries
  for ((tries = 0; tries < 600; tries++)); do
    [[ -S $CPG_STAGE_SERVER ]] && return 0
    sleep 0.05
  done
  say "warm start unavailable; every stage starts its own interpreter"
}

# json_get FILE FILTER: one value from a JSON file.
json_get() { jq -er "$2" "$1"; }

# log_decision LOG key=value...: the driver's decisions go into the task's train.log too.
log_decision() {
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  printf '%(%Y-%m-%dT%H:%M:%S)T stage=driver %s\n' -1 "$*" | tee -a "$log"
}

# stage_done NAME MARKER_DIR ALLOWED_CODES: whether MARKER_DIR/NAME records that stage NAME finished; if
# so, STAGE_RC is its state code. A marker is data: only a content that is exactly one of ALLOWED_CODES
# counts (never evaluated, as arithmetic would run an expression in it); anything else is removed with a
# one-line warning, so the stage is redone.
stage_done() {
  local name=$1 marker="$2/$1" allowed=$3 content="" code
  [[ -e $marker || -L $marker ]] || return 1
  if [[ -f $marker && -r $marker ]]; then
    LC_ALL=C read -r -N 32 content < "$marker" || true
    content=${content%$'\n'}
    for code in $allowed; do
      if [[ $content == "$code" ]]; then
        STAGE_RC=$code
        return 0
      fi
    done
  fi
  content=${content//[^[:alnum:] ._-]/?}
  printf '%s: warning: stage %s: marker %s holds "%s", not one of its codes (%s); redoing the stage\n' \
    "$(basename "$0")" "$name" "$marker" "${content:0:20}" "$allowed" >&2
  rm -rf -- "$marker"
  return 1
}

# flag_value FLAG ARGS...: FLAG_VALUE is the value that follows FLAG in ARGS; false when there is none.
flag_value() {
  local flag=$1
  shift
  FLAG_VALUE=""
  while (($# >= 2)); do
    if [[ $1 == "$flag" ]]; then
      FLAG_VALUE=$2
      return 0
    fi
    shift
  done
  return 1
}

# same_stage_arguments MARKER COMMAND...: a finished stage's marker carries the stage's full command line
# (MARKER.args, its words NUL-separated), its fingerprint; the same stage asked with other words is a rerun
# with other settings, which must not reuse its result: one line per differing word, exit 64. A marker
# written before fingerprints existed has none and is taken as it is.
same_stage_arguments() {
  local marker=$1 old=() i changes=()
  shift
  [[ -f $marker.args ]] || return 0
  mapfile -d '' -t old < "$marker.args"
  for ((i = 0; i < ${#old[@]} || i < $#; i++)); do
    [[ ${old[i]-} == "${*:i+1:1}" ]] && continue
    changes+=("${old[i - 1]-}: '${old[i]-}' -> '${*:i+1:1}'")
  done
  ((${#changes[@]})) || return 0
  for i in "${changes[@]}"; do
    printf '%s: error: stage %s ran with other arguments: %s\n' "${0##*/}" "${marker##*/}" "$i" >&2
  done
  usage_error "the run folder $RUN_ROOT holds results of other settings; give the new run its own folder" \
    "(another setting name, EXPERIMENT or CKPT_ROOT), or delete that folder to start it over"
}

# children_cpu: CHILDREN_CPU is the CPU time (user + sys, in clock ticks) of the children this shell has
# waited for, their own waited-for children included (cutime and cstime in /proc's stat of this shell);
# empty where there is no /proc.
children_cpu() {
  local stat=()
  CHILDREN_CPU=""
  [[ -r /proc/$BASHPID/stat ]] || return 0
  read -r -a stat < "/proc/$BASHPID/stat"  # field 2, the command's name, is this shell's: no spaces
  CHILDREN_CPU=$((stat[15] + stat[16]))
}

# stage_cpu_seconds TICKS: the CPU seconds of a stage whose processes used TICKS (children_cpu's difference)
# plus the warm-start child's, which reaches this shell only when the server ends, so the child reports
# it in $CPG_STAGE_CPU itself.
stage_cpu_seconds() {
  local warm=0
  if [[ -n ${CPG_STAGE_CPU:-} && -f $CPG_STAGE_CPU ]]; then
    read -r warm < "$CPG_STAGE_CPU" || warm=0
    rm -f "$CPG_STAGE_CPU"
  fi
  awk -v ticks="$1" -v hz="$CLOCK_TICKS" -v warm="$warm" 'BEGIN { printf "%.3f\n", ticks / hz + warm }'
}

# run_stage NAME MARKER_DIR LOG ALLOWED_CODES COMMAND...
# Runs COMMAND unless MARKER_DIR/NAME records that it finished before, and sets STAGE_RC to its state code.
# Only state codes in ALLOWED_CODES are recorded, so a crash or a kill is redone on the next run.
# Exit 3 (no accuracy goal) stops the driver with advice, exit 65 (a checkpoint it cannot read, or an output
# it cannot write) naming the stage's input folder, and any other unexpected code stops it too; each exits with the stage's code.
run_stage() {
  local name=$1 marker_dir=$2 log=$3 allowed=$4 signal_name input see="" started cpu_before cpu_ticks cpu=""; shift 4
  local marker="$marker_dir/$name"
  if stage_done "$name" "$marker_dir" "$allowed"; then
    same_stage_arguments "$marker" "$@"
    say "$name: done before (exit $STAGE_RC), skipped"
    return 0
  fi
  say "$name: running"
  started=$EPOCHREALTIME
  children_cpu
  cpu_before=$CHILDREN_CPU
  run_child "$@" || true
  STAGE_RC=$CHILD_RC
  children_cpu
  if [[ -n $CHILDREN_CPU ]]; then
    CLOCK_TICKS=${CLOCK_TICKS:-$(getconf CLK_TCK)}
    cpu_ticks=$((CHILDREN_CPU - cpu_before))
    cpu=$(stage_cpu_seconds "$cpu_ticks")
  fi
  [[ ! -f $log ]] || see="; log: $log"  # only a log the stage wrote
  if [[ " $allowed " == *" $STAGE_RC "* ]]; then
    mkdir -p "$marker_dir"
    # the stage's wall time beside its marker: tools.report --runs adds them up into the run's cost
    awk -v end="$EPOCHREALTIME" -v start="$started" 'BEGIN { printf "%.3f\n", end - start }' > "$marker.seconds"
    [[ -z $cpu ]] || printf '%s\n' "$cpu" > "$marker.cpu"  # its CPU time, the stage's own processes'
    printf '%s\0' "$@" > "$marker.args.tmp"
    mv "$marker.args.tmp" "$marker.args"
    printf '%s\n' "$STAGE_RC" > "$marker.tmp"
    mv "$marker.tmp" "$marker"
    return 0
  fi
  case $STAGE_RC in
    64)
      printf 'Stopped: stage %s rejected its input (message above).\n' "$name" >&2
      exit 64 ;;
    3)
      flag_value --benchmark "$@" || FLAG_VALUE=${BENCHMARK:-<benchmark>}
      printf 'Stopped: stage %s has no accuracy goal (message above). Train baselines with scripts/baseline.sh %s' \
        "$name" "$FLAG_VALUE" >&2
      printf ' and rerun with GOALS=%s, or point GOALS at a JSON file mapping each task name to its goal%s.\n' \
        "$REPO_ROOT/logs/baseline_${FLAG_VALUE}_acc.json" "$see" >&2
      exit 3 ;;
    65)  # main_normal.py's line above says which: a checkpoint it could not read or a file it could not write
      input=""
      if flag_value --load_folder "$@" || flag_value --task_folder "$@"; then
        input=" ($FLAG_VALUE)"
      fi
      printf 'Stopped: stage %s could not read its input%s or write its output (message above)%s.\n' \
        "$name" "$input" "$see" >&2
      exit 65 ;;
    129 | 130 | 143)  # the stage was stopped by a signal from outside (the driver's own traps exit before)
      signal_name=$(kill -l "$STAGE_RC")
      printf '%s: stage %s was interrupted (SIG%s); run the same command again to resume\n' "${0##*/}" "$name" \
        "$signal_name" >&2
      exit "$STAGE_RC" ;;
  esac
  die "stage $name exited with unexpected code $STAGE_RC$see"
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
  PYTHON_ORIGIN=venv
  export PATH="$venv/bin:$PATH"
}

# use_gpus: GPUS read into STAGE_RANKS (processes per stage), STAGE_DEVICES (their CUDA_VISIBLE_DEVICES;
# empty for the CPU) and STAGE_GPU_IDS (one entry per process: a GPU id, or cpu). Each GPU id must be
# distinct (two ranks on one GPU would share its memory and run no faster); GPU ids on a machine without
# an NVIDIA GPU warn once, as select_gpu does, and run on the CPU (DEVICE=cpu, exported: no second warning).
use_gpus() {
  local count id seen=()
  STAGE_RANKS=1 STAGE_DEVICES=${GPUS:-} STAGE_GPU_IDS=()
  [[ -n ${GPUS:-} ]] || return 0
  if [[ $GPUS =~ ^cpu:([1-9][0-9]*)$ ]]; then
    STAGE_RANKS=${BASH_REMATCH[1]} STAGE_DEVICES=""
    for ((count = 0; count < STAGE_RANKS; count++)); do STAGE_GPU_IDS+=(cpu); done
  elif [[ $GPUS =~ ^[0-9]{1,6}(,[0-9]{1,6})*$ ]]; then
    IFS=, read -r -a STAGE_GPU_IDS <<< "$GPUS"
    STAGE_RANKS=${#STAGE_GPU_IDS[@]}
    for id in "${STAGE_GPU_IDS[@]}"; do
      ((!seen[10#$id]++)) || usage_error "GPUS must name each GPU once (one process per GPU), got '$GPUS'"
    done
    if [[ ${DEVICE:-} != cpu ]] && ! gpu_found; then  # no warning when the CPU is what was asked for
      printf 'warning: no NVIDIA GPU found; GPUS=%s runs on the CPU, which is far slower\n' "$GPUS" >&2
      export DEVICE=${DEVICE:-cpu}
    fi
  else
    usage_error "GPUS must be GPU ids such as 0,1,2,3, or cpu:N for N processes on the CPU; got '$GPUS'"
  fi
}

# ranked_main ARGS...: `main_normal.py ARGS` in one process, or with several GPUS under torchrun, one rank
# per GPU. torchrun reads any non-zero exit as a crashed rank, so rank 0 writes the stage's state code to
# CPG_STATE_FILE, which becomes this function's status; torchrun's own failure (a crash on any rank, a
# kill) is returned instead, never read as a state, so run_stage redoes the stage on the next run.
ranked_main() {
  use_gpus
  [[ -z ${GPUS:-} ]] || export CUDA_VISIBLE_DEVICES=$STAGE_DEVICES
  # in run_stage's child shell a terminal's Ctrl-C is the driver's to handle (it stops this stage with TERM):
  # a Python interpreter interrupted while it starts up would print a traceback
  ((BASH_SUBSHELL == 0)) || trap '' INT
  if ((STAGE_RANKS == 1)); then
    # become the stage in that child shell, so the driver's signals reach it
    if ((BASH_SUBSHELL > 0)); then exec "$PYTHON" main_normal.py "$@"; fi
    "$PYTHON" main_normal.py "$@"
    return
  fi
  local state code=0 runner
  state=$(mktemp)
  CPG_STATE_FILE=$state "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$STAGE_RANKS" \
    main_normal.py "$@" &
  runner=$!
  trap 'kill -TERM "$runner" 2>/dev/null' TERM  # torchrun stops its ranks
  wait "$runner" || code=$?
  while process_alive "$runner"; do
    wait "$runner" || code=$?
  done
  if ((code == 0)); then
    code=$(<"$state")
    [[ $code =~ ^[0-9]+$ ]] || code=1
  fi
  rm -f "$state"
  return "$code"
}

# spread_over_gpus LOGS WORKER GPU...: independent runs, one background process per GPU: `WORKER INDEX COUNT`
# runs with that GPU alone (GPUS and CUDA_VISIBLE_DEVICES; a GPU named cpu means the CPU) and takes runs
# INDEX, INDEX + COUNT, ... one after another. Waits for every worker, then names each failed one with its
# GPU and code and stops the driver (exit 64 when any rejected its input); LOGS says where to look.
# gpu_worker GPU COMMAND...: one of spread_over_gpus' workers, in its own background shell, on GPU alone.
gpu_worker() {
  local gpu=$1; shift
  CHILD_PIDS=() WATCHER_PIDS=()  # the worker's own (its stage); the other workers are the driver's
  trap 'stop_children; exit 143' TERM
  if [[ $gpu == cpu ]]; then
    export CUDA_VISIBLE_DEVICES="" GPUS=cpu:1
  elif [[ $gpu == any ]]; then
    :  # the device the driver would use anyway (for_each_seed without GPUS)
  else
    select_gpu "$gpu"
    export GPUS=$gpu
  fi
  "$@"
}

spread_over_gpus() {
  local logs=$1 worker_function=$2; shift 2
  local gpus=("$@") pids=() failures=() codes=() worker code failed
  for worker in "${!gpus[@]}"; do
    gpu_worker "${gpus[worker]}" "$worker_function" "$worker" "${#gpus[@]}" &
    pids+=("$!")
    CHILD_PIDS+=("$!")  # a signal to the driver stops the workers, and each its stage
  done
  # every worker's code counts: one that rejected its input (64) must not hide behind another's crash
  for worker in "${!pids[@]}"; do
    code=0
    wait "${pids[worker]}" || code=$?
    if ((code != 0)); then
      failures+=("worker $worker (GPU ${gpus[worker]}) exit $code")
      codes+=("$code")
    fi
  done
  CHILD_PIDS=()
  ((${#failures[@]} == 0)) && return 0
  printf -v failed '%s, ' "${failures[@]}"
  failed="${failed%, }; see $logs"
  [[ " ${codes[*]} " != *" 64 "* ]] || usage_error "workers stopped on bad input: $failed"
  die "workers failed: $failed"
}

# for_each_seed ARGS...: with SEEDS (e.g. SEEDS="1 2 3") run this driver once per seed instead, as
# `SEED=<seed> $0 ARGS` (each driver names its run folder by its seed),
# spread over GPUS (one worker per GPU id, each running its seeds one after another on that GPU alone) or,
# without GPUS, over SEED_WORKERS workers on the device the driver would use (default 1); then print the
# seeds' table (tools.report --runs) and exit. Without SEEDS it returns and the driver runs once, on SEED.
for_each_seed() {
  [[ -n ${SEEDS:-} ]] || return 0
  local seed workers=() count
  read -r -a SEED_LIST <<< "$SEEDS"
  ((${#SEED_LIST[@]})) || usage_error "SEEDS must list at least one seed"
  for seed in "${SEED_LIST[@]}"; do
    [[ $seed =~ ^(0|[1-9][0-9]{0,17})$ ]] || usage_error "SEEDS must list whole numbers, got '$seed'"
  done
  if [[ -n ${GPUS:-} ]]; then
    [[ $GPUS =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "with SEEDS, GPUS must list GPU ids such as 0,1 (one seed at a time on each), got '$GPUS'"
    IFS=, read -r -a workers <<< "$GPUS"
  else
    count=${SEED_WORKERS:-1}
    require_count SEED_WORKERS "$count" 64
    for ((seed = 0; seed < count; seed++)); do workers+=(any); done
  fi
  SEED_DRIVER=("$0" "$@")
  SEED_ROOTS_FILE=$(mktemp)
  on_exit "rm -f '$SEED_ROOTS_FILE'"
  say "seeds ${SEED_LIST[*]}: ${#workers[@]} worker(s)"
  spread_over_gpus "the seeds' train.log files" seed_share "${workers[@]}"
  mapfile -t SEED_ROOTS < <(sort -u "$SEED_ROOTS_FILE")
  [[ -z ${RUN_ROOTS_FILE:-} ]] || printf '%s\n' "${SEED_ROOTS[@]}" >> "$RUN_ROOTS_FILE"  # a comparison's
  run_child "$PYTHON" -m tools.report --runs "${SEED_ROOTS[@]}"
  exit 0
}

# seed_share WORKER WORKERS: for_each_seed's seeds WORKER, WORKER + WORKERS, ... one after another.
seed_share() {
  local k seed
  for ((k = $1; k < ${#SEED_LIST[@]}; k += $2)); do
    seed=${SEED_LIST[k]}
    say "seed $seed: $(basename "${SEED_DRIVER[0]}") ${SEED_DRIVER[*]:1}"
    CHILD_IS_DRIVER=1
    run_child env -u SEEDS SEED="$seed" RUN_ROOTS_FILE="$SEED_ROOTS_FILE" \
      bash "${SEED_DRIVER[@]}" || return "$CHILD_RC"
  done
}

# write_run_card ROOT METHOD SEED: ROOT/run.json names the finished run for tools.report --runs (the
# method as the comparison table labels it, the benchmark, the seed and the command), and ROOT is added to
# RUN_ROOTS_FILE when a caller (for_each_seed, a comparison script) collects the runs.
write_run_card() {
  local settings='{}'
  [[ ! -f $1/run_settings.json ]] || settings=$("$PYTHON" -m tools.run_settings --card "$1")
  jq -n --arg method "$2" --arg benchmark "$BENCHMARK" --argjson seed "$3" --arg command "$DRIVER_COMMAND" \
    --argjson settings "$settings" '{method: $method, benchmark: $benchmark, seed: $seed, command: $command,
    settings: $settings}' > "$1/run.json.tmp"
  mv "$1/run.json.tmp" "$1/run.json"
  [[ -z ${RUN_ROOTS_FILE:-} ]] || printf '%s\n' "$1" >> "$RUN_ROOTS_FILE"
}

# GPUS given to the driver is checked (and its warning said) once, before any work
[[ -z ${GPUS:-} ]] || use_gpus
