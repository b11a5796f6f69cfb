"""Shell logic of the drivers and scripts/lib.sh, mostly with small stand-ins for the Python stages."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, environment, flag, run_driver
from tests.helpers.stand_in import stub_calls, stub_env

LIB = REPO / "scripts" / "lib.sh"



def run_bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`script` in a fresh bash that has sourced lib.sh (output in files: a leftover child keeps no pipe open)."""
    out, err = cwd / "bash.out", cwd / "bash.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(["bash", "-c", f'source "{LIB}"\n{script}'], stdout=stdout, stderr=stderr,
                              env=environment(**env), cwd=cwd, timeout=120)
    return subprocess.CompletedProcess(done.args, done.returncode, out.read_text(), err.read_text())


def _running(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_on_exit_cleanups_and_the_stage_server_cleanup_all_run(tmp_path):
    done = run_bash(f"""
        on_exit 'echo before > "{tmp_path}/before"'
        start_stage_server
        [[ -S $CPG_STAGE_SERVER ]] || exit 9
        echo "$STAGE_SERVER_PID" > "{tmp_path}/pid"
        echo "$STAGE_SERVER_DIR" > "{tmp_path}/dir"
        on_exit 'echo after > "{tmp_path}/after"'
        exit 5
    """, tmp_path, FAST_START="1")
    assert done.returncode == 5, done.stderr  # the cleanups keep the driver's exit status
    assert (tmp_path / "before").read_text() == "before\n"
    assert (tmp_path / "after").read_text() == "after\n"
    assert not Path((tmp_path / "dir").read_text().strip()).exists()
    pid = int((tmp_path / "pid").read_text())
    deadline = time.time() + 5  # the cleanup kills it at once; the margin is for a loaded machine
    while _running(pid) and time.time() < deadline:
        time.sleep(0.02)
    assert not _running(pid)


def test_cpg_data_root_argument_and_another_data_root_in_the_environment_are_refused(tmp_path):
    """The argument no longer wins silently (docs/running.md, rules every driver follows): two data roots are one
    line naming both, exit 64, before any stage, even when the environment's does not exist."""
    data = tmp_path / "data"
    data.mkdir()
    env = stub_env(tmp_path)
    done = run_driver("cpg.sh", "split_digits", str(data), "s", "1.5", DATA_ROOT=str(tmp_path / "nonexistent"),
                      CKPT_ROOT=str(tmp_path / "ck"), **env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 64 and len(lines) == 1 and "two data roots" in lines[0], done.stderr
    assert str(data) in lines[0] and str(tmp_path / "nonexistent") in lines[0]
    assert not stub_calls(env)


@pytest.mark.slow
def test_supsup_gg_takes_any_characters_in_the_checkpoint_root(tmp_path):
    data, ckpt = tmp_path / "data", tmp_path / r"ck a&b|c\1"
    data.mkdir()
    done = run_driver("supsup_gg.sh", "0", BENCHMARK="permuted_digits", NUM_TASKS="2", EPOCHS="1",
                      BATCH_SIZE="32", DATA_ROOT=str(data), CKPT_ROOT=str(ckpt), OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-2000:]
    root = ckpt / "SupSup/permuted_digits/gg_er32_seed0/lenet_300_100"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["num_tasks_learned"] == 2
    rows = [line.split(",")[1] for line in (root / "results.csv").read_text().splitlines()[1:]]
    assert rows == ["pdigits_00", "pdigits_01", "average"]


@pytest.mark.parametrize("gpus, codes, expected, failed", [
    ("0 1", {"pdigits_00": 64, "pdigits_01": 1}, 64, ["worker 0 (GPU 0) exit 64", "worker 1 (GPU 1) exit 1"]),
    ("0,1,2", {"pdigits_00": 1, "pdigits_02": 1}, 1, ["worker 0 (GPU 0) exit 1", "worker 2 (GPU 2) exit 1"]),
])
def test_supsup_gg_reports_every_failed_worker(tmp_path, gpus, codes, expected, failed):
    env = stub_env(tmp_path, **codes)
    done = run_driver("supsup_gg.sh", gpus, BENCHMARK="permuted_digits", NUM_TASKS=str(len(gpus) // 2 + 1),
                      DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), **env)
    assert done.returncode == expected, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert [worker for worker in failed if worker in summary] == failed
    assert summary.count(" exit ") == len(failed)
    assert all(flag(call["args"], "--mode") == "finetune" for call in stub_calls(env))  # no evaluation after a failure


TINY_SYNTHETIC = {"SEEDS": "1", "SIZES": "6,3,2", "EPOCHS": "300", "SAMPLES": "300", "OMP_NUM_THREADS": "1"}
STRAY = "2026-01-01T00:00:00 stage=retrain exit=0 state=OK folder=/nowhere/clustering_x seconds=1\n"


def _table(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("|")]


@pytest.mark.slow
def test_extract_synthetic_reads_the_report_it_asked_for(tmp_path):
    out = tmp_path / "out"
    first = run_driver("extract_synthetic.sh", str(out), **TINY_SYNTHETIC)
    assert first.returncode == 0, first.stderr[-2000:]
    report = out / "seed_1.report.json"
    assert json.loads(report.read_text())["settings"]["seed"] == 1
    assert "after_tuning" in (out / "seed_1.report.txt").read_text()
    table = _table(first.stdout)
    assert table[0].startswith("| seed |") and table[2].startswith("| 1 |")
    assert (out / "seeds.md").read_text().splitlines() == table

    with (out / "seed_1.log").open("a") as log:
        log.write(STRAY)  # a log line naming another folder must not matter
    again = run_driver("extract_synthetic.sh", str(out), **TINY_SYNTHETIC)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done before") == 2 and _table(again.stdout) == table

    report.unlink()  # a folder from before the report was written there: the rebuild is redone
    rebuilt = run_driver("extract_synthetic.sh", str(out), **TINY_SYNTHETIC)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert "rebuild_seed1_gamma0.5_beta6: running" in rebuilt.stdout and report.is_file()

    before = report.read_bytes()  # the folder holds beta 6's run: another beta is another run, not a rebuild here
    switched = run_driver("extract_synthetic.sh", str(out), **TINY_SYNTHETIC, BETA="7")
    assert switched.returncode == 64 and "setting BETA: '6' -> '7'" in switched.stderr
    assert "running" not in switched.stdout and report.read_bytes() == before


@pytest.mark.slow
def test_extract_digits_writes_and_prints_its_report(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    env = {"SEEDS": "1", "TEACHER_EPOCHS": "10", "EPOCHS": "1500", "STUDENTS": "4", "FINETUNE_EPOCHS": "200",
           "DATA_ROOT": str(data), "OMP_NUM_THREADS": "1"}
    first = run_driver("extract_digits.sh", str(out), **env)
    assert first.returncode == 0, first.stderr[-2000:]
    report = out / "seed_1" / "report.json"
    assert json.loads(report.read_text())["after_tuning"] and "after_tuning" in report.with_suffix(".txt").read_text()
    table = _table(first.stdout)
    assert table[2].startswith("| 1 |") and (out / "seeds.md").read_text().splitlines() == table
    with (out / "seed_1" / "train.log").open("a") as log:
        log.write(STRAY)
    again = run_driver("extract_digits.sh", str(out), **env)
    assert again.returncode == 0 and again.stdout.count("done before") == 3 and _table(again.stdout) == table


@pytest.mark.parametrize("free_gib, installs", [(1, False), (100, True)])
def test_a_first_install_without_room_for_torch_stops_at_once_with_one_line(tmp_path, free_gib, installs):
    """ensure_venv checks the free space (a stand-in df) before a first install, so a full disk is one line in
    seconds rather than pip's "No space left on device" minutes in; with room it goes on to pip."""
    venv, tools = tmp_path / "venv", tmp_path / "tools"
    (venv / "bin").mkdir(parents=True)
    tools.mkdir()
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/pip_ran"\n')
    (tools / "df").write_text(f"#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                              f"echo '/dev/x 999999999 1 {free_gib * 1048576} 1% /'\n")
    for script in (python, tools / "df"):
        script.chmod(0o755)
    done = run_bash(f'PATH="{tools}:$PATH" VENV="{venv}" ensure_venv "$REPO_ROOT/requirements-dev.txt"', tmp_path)
    assert (tmp_path / "pip_ran").exists() == installs
    if installs:
        assert done.returncode == 0 and "-m pip install" in (tmp_path / "pip_ran").read_text(), done.stderr
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert f"{venv} needs about 7 GiB free there; its file system has {free_gib} GiB" in lines[0]


def test_resolve_roots_creates_only_the_default_data_root(tmp_path):
    repo = tmp_path / "fresh_clone"
    repo.mkdir()
    report = 'resolve_roots; printf "%s\\n" "$DATA_ROOT" "$CKPT_ROOT" "$PWD"'
    done = run_bash(f'REPO_ROOT="{repo}"; {report}', tmp_path, DATA_ROOT="", CKPT_ROOT="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(repo / "data"), str(repo / "checkpoints"), str(repo)]
    assert (repo / "data").is_dir()

    missing = tmp_path / "missing"
    done = run_bash(f'REPO_ROOT="{repo}"; {report}', tmp_path, DATA_ROOT=str(missing))
    assert done.returncode == 64 and len(done.stderr.splitlines()) == 1 and str(missing) in done.stderr
    assert not missing.exists()


@pytest.mark.parametrize("script", ["subspace_lines.sh", "extract_digits.sh"])
def test_a_missing_data_root_given_by_the_user_stops_the_driver(tmp_path, script):
    missing = tmp_path / "missing"
    args = [str(tmp_path / "out")] if script.startswith("extract") else []
    done = run_driver(script, *args, DATA_ROOT=str(missing), CKPT_ROOT=str(tmp_path / "ck"), EPOCHS="1",
                      TEACHER_EPOCHS="1")
    assert done.returncode == 64, done.stderr[-2000:]
    assert done.stderr.splitlines() == [f"{script}: error: data root {missing} does not exist"]
    assert not missing.exists()


def test_a_stages_time_records_add_up_in_bash_as_awk_would(tmp_path):
    """run_stage's records are computed in bash arithmetic (no process per record): the CPU seconds are the
    clock ticks plus the warm child's own seconds, the wall seconds a difference of two $EPOCHREALTIME
    readings, each with three decimals, as awk's printf "%.3f" would print them."""
    cases = [(0, "", "0.000"), (9, "0.226", "0.316"), (12345, "1.999", "125.449"), (7, "", "0.070"),
             (3, "12.004", "12.034"), (100, "bogus", "1.000")]
    lines = []
    for ticks, warm, _ in cases:
        lines.append(f'printf "%s" "{warm}" > "{tmp_path}/child.cpu"; stage_cpu_seconds {ticks}; echo "$STAGE_CPU"')
        lines.append(f'[[ ! -s "{tmp_path}/child.cpu" || "{warm}" == bogus ]] || echo "not emptied"')
    lines.append('elapsed_seconds 1796568100.686398 1796568101.000397; echo "$ELAPSED"')
    done = run_bash("\n".join(lines), tmp_path, CPG_STAGE_CPU=str(tmp_path / "child.cpu"), CLOCK_TICKS="100")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [expected for _, _, expected in cases] + ["0.313"]
