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

# resolve_roots [DATA_ARGUMENT]: check the interpreter (require_python), then the data root and CKPT_ROOT
# (default checkpoints/) as absolute paths (exported, so a driver's drivers see the same), a BENCHMARK that is a
# spec file as its absolute path (absolute_spec), and work from the repository root. One rule for every driver: the data root is DATA_ROOT (default data/). A driver that also
# takes it as an argument (cpg.sh) passes the argument here: alone it is the data root; with a DATA_ROOT that
# names another folder the run stops with one line and exit 64 (neither silently wins). A data root the user
# gave must exist (a typo must not train elsewhere); the default is created, as a fresh clone has none and the
# embedded benchmarks need no files in it.
resolve_roots() {
  require_python
  local given=${1:-} ours theirs
  if [[ -n $given && -n ${DATA_ROOT:-} ]]; then
    ours=$(realpath -m -- "$given")
    theirs=$(realpath -m -- "$DATA_ROOT")
    [[ $ours == "$theirs" ]] || usage_error "two data roots: the argument '$given' and DATA_ROOT='$DATA_ROOT';" \
      "give one of them (or the same folder in both)"
  fi
  [[ -z $given ]] || DATA_ROOT=$given
  if [[ -n ${DATA_ROOT:-} ]]; then
    [[ -d $DATA_ROOT ]] || usage_error "data root $DATA_ROOT does not exist"
  else
    DATA_ROOT=$REPO_ROOT/data
    mkdir -p "$DATA_ROOT"
  fi
  DATA_ROOT=$(realpath "$DATA_ROOT")
  CKPT_ROOT=$(realpath -m "${CKPT_ROOT:-$REPO_ROOT/checkpoints}")
  export DATA_ROOT CKPT_ROOT
  absolute_spec BENCHMARK
  cd "$REPO_ROOT" || exit 1
}

# absolute_spec NAME: the variable NAME, when it names a benchmark spec file (*.json), becomes the file's absolute
# path, read from the folder the driver was started in (as DATA_ROOT and CKPT_ROOT are; call it before
# resolve_roots, which works from the repository root). So the same spec given by another path is the same
# benchmark to every stage's fingerprint and to run_settings.json, and resumes the same run.
absolute_spec() {
  [[ ${!1:-} == *.json ]] || return 0
  local path
  path=$(realpath -m -- "${!1}")
  printf -v "$1" '%s' "$path"
}

# require_folder_name NAME VALUE: VALUE is one folder name (a run folder's part): letters, digits and _ . + = , -,
# not starting with . or -, so that no value (an absolute path, ../..) puts a run outside its method's folder.
require_folder_name() {
  [[ $2 =~ ^[A-Za-z0-9_][A-Za-z0-9_.+=,-]{0,127}$ ]] ||
    usage_error "$1 must be one folder name (letters, digits and _ . + = , -, not starting with . or -), got '$2'"
}

# benchmark_label BENCHMARK: BENCHMARK_LABEL, the benchmark's name as it goes into folder and file names: a
# built-in's own name, a spec file's name without its folders and .json (/data/mine/birds.json is "birds"), never a
# path. The spec's full path and SHA-256 stay in run_settings.json, so another spec of the same name does not
# resume a run of this one (it is refused, one line per differing setting).
benchmark_label() {
  BENCHMARK_LABEL=$1
  [[ $1 == *.json ]] || return 0
  BENCHMARK_LABEL=${1##*/}
  BENCHMARK_LABEL=${BENCHMARK_LABEL%.json}
  BENCHMARK_LABEL=${BENCHMARK_LABEL//[^A-Za-z0-9_.+=,-]/_}
  [[ $BENCHMARK_LABEL =~ ^[A-Za-z0-9_] ]] || BENCHMARK_LABEL=spec$BENCHMARK_LABEL
}

# run_label BENCHMARK: RUN_LABEL, the part of every run folder's path that names the experiment
# ($CKPT_ROOT/<method>/<RUN_LABEL>/...): EXPERIMENT when set, else the benchmark's label (benchmark_label).
run_label() {
  benchmark_label "$1"
  RUN_LABEL=${EXPERIMENT:-$BENCHMARK_LABEL}
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

# require_disk_space FOLDER GIB DOING: stop with one line when FOLDER's file system has less than GIB GiB free,
# before a long install that pip would end minutes in with "No space left on device".
require_disk_space() {
  local free
  free=$(df -Pk -- "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }')
  [[ -z $free ]] || ((free >= $2)) || die "$3 $1 needs about $2 GiB free there; its file system has $free GiB:" \
    "free some space, or give VENV a folder on another file system"
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
    compgen -G "$venv/lib/python3*/site-packages/torch" > /dev/null ||
      require_disk_space "$venv" 7 "installing the requirements (torch with its CUDA libraries: 6 GB) into"
    say "installing $(basename "$requirements") into $venv (the first time takes a few minutes)"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
    printf '%s\n' "$wanted" > "$stamp"
  fi
  PYTHON="$venv/bin/python"
  PYTHON_ORIGIN=venv
  export PATH="$venv/bin:$PATH"
}
