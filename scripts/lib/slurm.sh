#!/usr/bin/env bash
# Seeds as a SLURM job array (part of scripts/lib.sh): check_launcher, submit_seed_array. LAUNCHER=slurm: a SEEDS sweep becomes one SLURM job array, one seed per element, each element running this same
# driver on its seed exactly as a local worker would (so the drivers stay the single source of truth, and every
# element resumes like any run). The batch script is kept under SLURM_DIR (default logs/slurm) as the record of
# what was submitted; once the array has finished, the same command without LAUNCHER finds every seed's run done
# and prints the seeds' table.

# check_launcher: LAUNCHER is empty, local or slurm (anything else is a usage error, before any work).
check_launcher() {
  case ${LAUNCHER:-local} in
    local | slurm) ;;
    *) usage_error "LAUNCHER must be local or slurm, got '$LAUNCHER'" ;;
  esac
}

# submit_seed_array DRIVER ARGS...: write the batch script for SEED_LIST and hand it to sbatch as an array,
# with SBATCH_ARGS (split on spaces, e.g. "--partition=gpu --gres=gpu:1 --time=12:00:00") passed through.
submit_seed_array() {
  require_commands sbatch
  local folder=${SLURM_DIR:-$REPO_ROOT/logs/slurm} name script job last sbatch_args=()
  read -r -a sbatch_args <<< "${SBATCH_ARGS:-}"
  name=$(basename "$1" .sh)
  mkdir -p "$folder" || die "cannot create SLURM_DIR $folder"
  folder=$(cd "$folder" && pwd)
  script="$folder/${name}_$(date +%Y%m%d_%H%M%S)_$$.sbatch"
  {
    printf '#!/usr/bin/env bash\n'
    printf '#SBATCH --job-name=%s\n#SBATCH --output=%s\n' "$name" "$folder/${name}_%A_%a.out"
    printf '# %s\n' "written by LAUNCHER=slurm for: $DRIVER_COMMAND"
    printf 'seeds=(%s)\n' "${SEED_LIST[*]}"
    printf 'cd %q || exit 1\n' "$PWD"
    # shellcheck disable=SC2016  # expanded by the batch script on the cluster, not here
    printf 'exec env -u SEEDS -u LAUNCHER SEED="${seeds[SLURM_ARRAY_TASK_ID]}" bash'
    printf ' %q' "$@"
    printf '\n'
  } > "$script"
  last=$((${#SEED_LIST[@]} - 1))
  job=$(sbatch --parsable --array="0-$last" "${sbatch_args[@]}" "$script") \
    || die "sbatch refused the array (its message is above); the batch script is $script"
  say "submitted SLURM job array ${job%%;*}: seeds ${SEED_LIST[*]}, one per element; outputs in $folder"
  say "when it has finished, run the same command without LAUNCHER for the seeds' table"
}
