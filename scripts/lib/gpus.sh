#!/usr/bin/env bash
# GPUs and torchrun (part of scripts/lib.sh): the device, CPU threads, ranks per stage, work spread over GPUs.
# shellcheck disable=SC2034  # WATCHER_PIDS is read by processes.sh (stop_children)

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

# select_gpu [ID]: run on GPU ID (CUDA_VISIBLE_DEVICES); warn and use the CPU when there is none. Without an
# ID (none given to the driver) nothing is chosen: the run goes where DEVICE says (auto: the first visible GPU,
# else the CPU), so a CPU run never needs a GPU id.
select_gpu() {
  [[ -n ${1:-} ]] || return 0
  [[ $1 =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "GPU id must be a number like 0 (or a list like 0,1), got '$1'"
  export CUDA_VISIBLE_DEVICES=$1
  if [[ ${DEVICE:-} != cpu ]] && ! gpu_found; then  # no warning when the CPU is what was asked for
    printf 'warning: no NVIDIA GPU found; running on the CPU, which is far slower\n' >&2
    export DEVICE=${DEVICE:-cpu}
  fi
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
