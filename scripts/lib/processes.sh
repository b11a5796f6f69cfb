#!/usr/bin/env bash
# Processes and signals (part of scripts/lib.sh): EXIT actions, signal traps, children that stop with the driver.

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
# substitutions, so in these scripts no command holds more than one (tests/drivers/test_driver_signals.py checks).
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

# pause SECONDS: wait without starting a process (a driver waits often, and `sleep` is one each time): read -t
# on a pipe that never delivers, opened once per driver and inherited by its subshells.
exec {PAUSE_FD}<> <(:)
wait "$!" 2>/dev/null || true  # reap the process substitution, which ends at once
pause() {
  read -r -t "$1" -u "$PAUSE_FD" _ || true
}

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
    pause 0.1
  done
  kill -KILL "${CHILD_PIDS[@]}" 2>/dev/null || true
  wait "${CHILD_PIDS[@]}" "${WATCHER_PIDS[@]}" 2>/dev/null || true
  CHILD_PIDS=()
  WATCHER_PIDS=()
}

# watch_driver PID: run in the background; TERM to PID once the driver is gone. Polls twice a second with
# bash builtins only (pause), so it starts no process while it waits.
watch_driver() {
  trap - INT TERM HUP EXIT
  local child=$1
  while process_alive "$DRIVER_PID" && process_alive "$child"; do
    pause 0.5
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
