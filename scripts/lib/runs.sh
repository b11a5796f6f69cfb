#!/usr/bin/env bash
# Run folders, settings, seeds and run cards (part of scripts/lib.sh): lock_run_root, begin_run, for_each_seed,
# one_seed_per_run.
# shellcheck disable=SC2034  # RUN_ROOT and CHILD_IS_DRIVER are read by processes.sh and stages.sh

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

# begin_method_run FOLDER BENCHMARK SETTING NAME[:DEFAULT]...: the common start of a driver that learns one
# task per stage (wsn.sh, hat.sh, ewc.sh, lwf.sh): BENCHMARK's tasks and the CPU threads, the run's settings
# (ARCH, NUM_TASKS, SEED with default 1, then each NAME from the environment, else DEFAULT), and
# ROOT=$CKPT_ROOT/FOLDER/<EXPERIMENT or the benchmark's name>/SETTING_seed$SEED/$ARCH held as this run's folder.
begin_method_run() {
  local folder=$1 label=$3 name
  BENCHMARK=$2
  shift 3
  require_folder_name setting "$label"
  require_commands jq "$PYTHON"
  resolve_roots
  load_benchmark "$BENCHMARK"
  limit_cpu_threads
  for name in ARCH NUM_TASKS SEED:1 "$@"; do
    setting "${name%%:*}" "${name#*:}"
  done
  run_label "$BENCHMARK"
  ROOT="$CKPT_ROOT/$folder/$RUN_LABEL/${label}_seed$SEED/$ARCH"
  begin_run "$ROOT"
}

# read_seed_list: SEED_LIST, the seeds SEEDS lists: at least one, each a whole number (one line and 64 otherwise).
read_seed_list() {
  local seed
  read -r -a SEED_LIST <<< "$SEEDS"
  ((${#SEED_LIST[@]})) || usage_error "SEEDS must list at least one seed"
  for seed in "${SEED_LIST[@]}"; do
    [[ $seed =~ ^(0|[1-9][0-9]{0,17})$ ]] || usage_error "SEEDS must list whole numbers, got '$seed'"
  done
}

# for_each_seed ARGS...: with SEEDS (e.g. SEEDS="1 2 3") run this driver once per seed instead, as
# `SEED=<seed> $0 ARGS` (each driver names its run folder by its seed),
# spread over GPUS (one worker per GPU id, each running its seeds one after another on that GPU alone) or,
# without GPUS, over SEED_WORKERS workers on the device the driver would use (default 1); then print the
# seeds' table (tools.report --runs) and exit. Without SEEDS it returns and the driver runs once, on SEED.
# With LAUNCHER=slurm the seeds go to a SLURM job array instead (scripts/lib/slurm.sh).
for_each_seed() {
  [[ -n ${SEEDS:-} ]] || return 0
  local seed workers=() count
  read_seed_list
  if [[ ${LAUNCHER:-local} == slurm ]]; then
    submit_seed_array "$0" "$@"
    exit 0
  fi
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

# one_seed_per_run: the start of a driver that runs one seed and makes no table of seeds. SEEDS naming one
# seed runs that seed (as SEED); naming several stops with one line, rather than run one of them while the
# user believes every listed seed ran.
one_seed_per_run() {
  [[ -n ${SEEDS:-} ]] || return 0
  read_seed_list
  ((${#SEED_LIST[@]} == 1)) || usage_error "this driver runs one seed, and SEEDS names ${#SEED_LIST[@]} ('$SEEDS'):" \
    "run it once per seed with SEED=<seed>"
  SEED=${SEED_LIST[0]}
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
