"""LAUNCHER=slurm: a SEEDS sweep becomes one SLURM job array whose elements run the same driver, one seed each.
A stand-in `sbatch` records what it was asked to run; the recorded batch script is then run as SLURM would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import REPO, environment
from tests.helpers.stand_in import stub_calls, stub_env

SBATCH = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SBATCH_LOG"
cp "${@: -1}" "$SBATCH_LOG.script"
echo "${@: -1}" >> "$SBATCH_LOG.all"
echo 4242
"""


def _setup(tmp_path: Path) -> dict[str, str]:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "sbatch").write_text(SBATCH)
    (bin_folder / "sbatch").chmod(0o755)
    env = environment(**stub_env(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), DATA_ROOT=str(tmp_path),
                      SLURM_DIR=str(tmp_path / "slurm"), SBATCH_LOG=str(tmp_path / "sbatch.log"))
    return {**env, "PATH": f"{bin_folder}:{env['PATH']}"}


def _driver(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    command = ["bash", "scripts/finetune.sh", "split_digits"]
    return subprocess.run(command, cwd=REPO, env={**env, **extra}, capture_output=True, text=True, timeout=120)


def test_seeds_go_to_one_job_array_whose_elements_run_the_driver_on_their_seed(tmp_path):
    env = _setup(tmp_path)
    done = _driver(env, SEEDS="3 7", LAUNCHER="slurm", SBATCH_ARGS="--partition=gpu --time=1:00:00")
    assert done.returncode == 0, done.stderr
    assert "job array 4242" in done.stdout and stub_calls(env) == []  # nothing trained here
    asked = (tmp_path / "sbatch.log").read_text().split()
    assert asked[:4] == ["--parsable", "--array=0-1", "--partition=gpu", "--time=1:00:00"]
    script = Path(asked[-1])
    assert script.parent == tmp_path / "slurm" and script.read_text() == (tmp_path / "sbatch.log.script").read_text()

    element = {**env, "SEEDS": "3 7", "LAUNCHER": "slurm", "SLURM_ARRAY_TASK_ID": "1"}  # sbatch exports the caller's
    ran = subprocess.run(["bash", str(script)], cwd=tmp_path, env=element, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    seeds = {call["args"][call["args"].index("--seed") + 1] for call in stub_calls(env)}
    assert seeds == {"7"}
    assert all("seed7" in path.as_posix() for path in (tmp_path / "ck").rglob("run.json"))


def test_an_unknown_launcher_is_refused_in_one_line(tmp_path):
    done = _driver(_setup(tmp_path), SEEDS="1", LAUNCHER="pbs")
    assert done.returncode == 64 and done.stderr.count("\n") == 1 and "LAUNCHER" in done.stderr


def test_without_sbatch_the_slurm_launcher_says_so(tmp_path):
    env = _setup(tmp_path)
    env["PATH"] = os.pathsep.join(part for part in env["PATH"].split(os.pathsep) if part != str(tmp_path / "bin"))
    done = _driver(env, SEEDS="1 2", LAUNCHER="slurm")
    assert done.returncode != 0 and "sbatch" in done.stderr and stub_calls(env) == []
    assert not json.dumps(done.stderr).count("Traceback")


def test_a_comparison_submits_every_methods_seeds_and_trains_nothing_here(tmp_path):
    env = _setup(tmp_path)
    done = subprocess.run(["bash", "scripts/compare_split_digits.sh"], cwd=REPO, capture_output=True, text=True,
                          env={**env, "SEEDS": "1 2", "LAUNCHER": "slurm"}, timeout=300)
    assert done.returncode == 0, done.stderr
    scripts = (tmp_path / "sbatch.log.all").read_text().split()
    drivers = sorted(Path(script).name.rsplit("_", 3)[0] for script in scripts)
    assert len(drivers) == len(set(scripts)) >= 6 and {"cpg", "piggyback", "supsup_gg"} <= set(drivers)
    assert stub_calls(env) == [] and "rerun without LAUNCHER" in done.stdout
