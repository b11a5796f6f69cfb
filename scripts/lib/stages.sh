#!/usr/bin/env bash
# Resumable stages and their markers (part of scripts/lib.sh): run_stage, fingerprints, CPU time, JSON via jq.

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

# stage_cpu_seconds TICKS: STAGE_CPU is the CPU seconds (three decimals) of a stage whose processes used
# TICKS (children_cpu's difference) plus the warm-start child's, which reaches this shell only when the server
# ends, so the child reports it in $CPG_STAGE_CPU itself; the file is emptied for the next stage. Bash
# arithmetic in milliseconds, not awk: this runs after every stage, and a process per record adds up.
stage_cpu_seconds() {
  local warm="" whole fraction milliseconds
  if [[ -n ${CPG_STAGE_CPU:-} && -s $CPG_STAGE_CPU ]]; then
    read -r warm < "$CPG_STAGE_CPU" || true  # a last line without its newline is read all the same
    : > "$CPG_STAGE_CPU"
  fi
  milliseconds=$(($1 * 1000 / CLOCK_TICKS))
  if [[ $warm =~ ^([0-9]+)\.([0-9]{3})$ ]]; then  # the child writes "%.3f"
    milliseconds=$((milliseconds + 10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]}))
  fi
  whole=$((milliseconds / 1000))
  fraction=$((milliseconds % 1000))
  printf -v STAGE_CPU '%d.%03d' "$whole" "$fraction"
}

# elapsed_seconds START END: ELAPSED is END - START, two $EPOCHREALTIME readings, in seconds with three
# decimals (bash arithmetic in microseconds).
elapsed_seconds() {
  local start=${1/[.,]/} end=${2/[.,]/} microseconds whole
  microseconds=$((10#$end - 10#$start))
  ((microseconds >= 0)) || microseconds=0  # the clock stepped back
  whole=$((microseconds / 1000000))
  printf -v ELAPSED '%d.%03d' "$whole" "$((microseconds % 1000000 / 1000))"
}

# drop_stage_checkpoints TASK_DIR: a task's chosen model is TASK_DIR/gradual_prune/checkpoint.pth once its
# pruning ratio (and retraining) is chosen; the checkpoints that led to it (scratch, each sparsity's folder,
# retrain) are read by no later stage, resume (their stages are done) or report, so they go, and a run's disk
# stays one checkpoint a task. Their meta.json and records stay. KEEP_STAGES=1 keeps everything.
drop_stage_checkpoints() {
  local dir=$1 folder
  [[ ${KEEP_STAGES:-0} != 1 ]] || return 0
  rm -f -- "$dir/scratch/checkpoint.pth" "$dir/retrain/checkpoint.pth"
  for folder in "$dir"/gradual_prune/*/; do
    [[ ! -d $folder ]] || rm -rf -- "$folder"
  done
}

# run_stage NAME MARKER_DIR LOG ALLOWED_CODES COMMAND...
# Runs COMMAND unless MARKER_DIR/NAME records that it finished before, and sets STAGE_RC to its state code.
# Only state codes in ALLOWED_CODES are recorded, so a crash or a kill is redone on the next run.
# Exit 3 (no accuracy goal) stops the driver with advice, exit 65 (a checkpoint it cannot read, or an output
# it cannot write) naming the stage's input folder, and any other unexpected code stops it too; each exits with the stage's code.
run_stage() {
  local name=$1 marker_dir=$2 log=$3 allowed=$4 signal_name input see="" started cpu_before cpu=""; shift 4
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
  elapsed_seconds "$started" "$EPOCHREALTIME"
  children_cpu
  if [[ -n $CHILDREN_CPU ]]; then
    CLOCK_TICKS=${CLOCK_TICKS:-$(getconf CLK_TCK)}
    stage_cpu_seconds "$((CHILDREN_CPU - cpu_before))"
    cpu=$STAGE_CPU
  fi
  [[ ! -f $log ]] || see="; log: $log"  # only a log the stage wrote
  if [[ " $allowed " == *" $STAGE_RC "* ]]; then
    [[ -d $marker_dir ]] || mkdir -p "$marker_dir"
    # the stage's wall time beside its marker: tools.report --runs adds them up into the run's cost
    printf '%s\n' "$ELAPSED" > "$marker.seconds"
    [[ -z $cpu ]] || printf '%s\n' "$cpu" > "$marker.cpu"  # its CPU time, the stage's own processes'
    # written in place, no rename: the marker comes last and stage_done takes only a whole code, so a
    # write cut short leaves a stage that is redone, never one taken as done with other arguments
    printf '%s\0' "$@" > "$marker.args"
    printf '%s\n' "$STAGE_RC" > "$marker"
    return 0
  fi
  case $STAGE_RC in
    64)
      printf 'Stopped: stage %s rejected its input (message above).\n' "$name" >&2
      exit 64 ;;
    3)
      flag_value --benchmark "$@" || FLAG_VALUE=${BENCHMARK:-<benchmark>}
      benchmark_label "$FLAG_VALUE"  # the goal file's name, as baseline.sh names it
      printf 'Stopped: stage %s has no accuracy goal (message above). Train baselines with scripts/baseline.sh %s' \
        "$name" "$FLAG_VALUE" >&2
      printf ' and rerun with GOALS=%s, or point GOALS at a JSON file mapping each task name to its goal%s.\n' \
        "$REPO_ROOT/logs/baseline_${BENCHMARK_LABEL}_acc.json" "$see" >&2
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
