#!/usr/bin/env bash
# Shared helpers of the drivers (source it): strict mode, then the files under scripts/lib/, one concern each.
# Those set the traps that turn SIGINT, SIGTERM and SIGHUP into a clean stop that a rerun resumes; a method's
# own shell goes to its helper (scripts/subspace_lib.sh, scripts/plain_models_lib.sh), sourced after this file.
set -euo pipefail

REPO_ROOT=$(dirname "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$REPO_ROOT/.." && pwd)

# shellcheck source=scripts/lib/environment.sh
source "$REPO_ROOT/scripts/lib/environment.sh"
# shellcheck source=scripts/lib/messages.sh
source "$REPO_ROOT/scripts/lib/messages.sh"
# shellcheck source=scripts/lib/processes.sh
source "$REPO_ROOT/scripts/lib/processes.sh"
# shellcheck source=scripts/lib/stages.sh
source "$REPO_ROOT/scripts/lib/stages.sh"
# shellcheck source=scripts/lib/stage_server.sh
source "$REPO_ROOT/scripts/lib/stage_server.sh"
# shellcheck source=scripts/lib/gpus.sh
source "$REPO_ROOT/scripts/lib/gpus.sh"
# shellcheck source=scripts/lib/runs.sh
source "$REPO_ROOT/scripts/lib/runs.sh"
# shellcheck source=scripts/lib/slurm.sh
source "$REPO_ROOT/scripts/lib/slurm.sh"

# GPUS, LAUNCHER and EXPERIMENT given to the driver are checked (and GPUS' warning said) once, before any work
[[ -z ${GPUS:-} ]] || use_gpus
check_launcher
[[ -z ${EXPERIMENT:-} ]] || require_folder_name EXPERIMENT "$EXPERIMENT"
