#!/usr/bin/env bash
# The warm-start stage server (part of scripts/lib.sh): start, launch and await it.

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
    pause 0.05
  done
  say "warm start unavailable; every stage starts its own interpreter"
}
