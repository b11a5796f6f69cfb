#!/usr/bin/env bash
# The environment (part of scripts/lib.sh): the interpreter, the driver's identity, roots, benchmarks, the venv.
# shellcheck disable=SC2034  # DRIVER_PID and PYTHON_ORIGIN are read by the other parts of lib.sh

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
