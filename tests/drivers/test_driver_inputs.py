"""What the drivers do with what they are given: stage markers, environment values, goal files, run folders,
the interpreter and the CPU thread count. Mostly with a small stand-in for the Python stages."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, environment, without_dates
from tests.helpers.stand_in import STUB, stub_calls, stub_env

LIB = REPO / "scripts" / "lib.sh"
QUICK = {"FINETUNE_EPOCHS": "6", "PRUNE_EPOCHS": "3", "RETRAIN_EPOCHS": "2", "BATCH_SIZE": "16",
         "PRUNING_INTERVAL": "1", "PRUNING_FREQUENCY": "3", "OMP_NUM_THREADS": "1"}



def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """COMMAND with its output in files (a leftover child keeps no pipe open); a run past TIMEOUT fails the test."""
    out, err = cwd / "run.out", cwd / "run.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        try:
            done = subprocess.run(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} ran past {timeout} s: {err.read_text()[-1000:]}")
    return subprocess.CompletedProcess(done.args, done.returncode, out.read_text(), err.read_text())


def driver(script: str, *args: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return run(["bash", str(REPO / "scripts" / script), *args], cwd, environment(**env), timeout)


def lib(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`script` in a fresh bash that has sourced lib.sh."""
    return run(["bash", "-c", f'source "{LIB}"\n{script}'], cwd, environment(**env))


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# 1. Stage markers are data ------------------------------------------------------------------------------------

EVIL = "SECONDS[$(touch {0})]"  # a set, numeric name: bash arithmetic would run the command


@pytest.mark.parametrize("content", ["", "7", "0 2", " 0", "0\n0\n", "2x", "{evil}", "directory"])
def test_a_marker_that_is_not_one_of_the_codes_is_redone_never_evaluated(tmp_path, content):
    stages = tmp_path / "task/.stages"
    stages.mkdir(parents=True)
    pwned = tmp_path / "pwned"
    marker = stages / "finetune"
    if content == "directory":
        marker.mkdir()
    else:
        marker.write_text(content.format(evil=EVIL.format(pwned)))
    done = lib(f"""
        run_stage finetune "{stages}" "{tmp_path}/task/train.log" "0 2 5" bash -c 'echo ran >> "{tmp_path}/ran"; exit 2'
        [[ $STAGE_RC -eq 2 ]] && echo state=$STAGE_RC
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert not pwned.exists()
    assert (tmp_path / "ran").read_text() == "ran\n" and "state=2" in done.stdout
    assert marker.read_text() == "2\n"
    warning = one_line(done)
    assert "warning" in warning and "finetune" in warning and "redoing" in warning


@pytest.mark.parametrize("content", ["0", "0\n", "5\n"])
def test_a_marker_with_one_of_the_codes_skips_the_stage(tmp_path, content):
    stages = tmp_path / ".stages"
    stages.mkdir()
    (stages / "finetune").write_text(content)
    done = lib(f"""
        run_stage finetune "{stages}" "{tmp_path}/train.log" "0 2 5" touch "{tmp_path}/ran"
        echo "state=$STAGE_RC"
    """, tmp_path)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert f"state={content.strip()}" in done.stdout and not (tmp_path / "ran").exists()


@pytest.mark.slow
def test_cpg_redoes_stages_whose_markers_hold_an_expression(data_root, tmp_path):
    env = {**QUICK, "NUM_TASKS": "1", "CKPT_ROOT": str(tmp_path / "ck")}
    first = driver("cpg.sh", "split_digits", str(data_root), "s", "1.5", cwd=tmp_path, timeout=300, **env)
    assert first.returncode == 0, first.stderr[-2000:]
    root = tmp_path / "ck/CPG/split_digits/s_seed1/digits_convnet"
    summary = (root / "summary.json").read_text()
    pwned = tmp_path / "pwned"
    for name in ("finetune_w1.0", "prune_0.1"):  # their codes go into [[ -eq ]] and (( )) in cpg.sh
        (root / "digits_01/.stages" / name).write_text(EVIL.format(pwned) + "\n")
    again = driver("cpg.sh", "split_digits", str(data_root), "s", "1.5", cwd=tmp_path, timeout=300, **env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not pwned.exists()
    assert "finetune_w1.0: running" in again.stdout and "prune_0.1: running" in again.stdout
    assert "prune_0.2: done before" in again.stdout
    assert again.stderr.count("redoing the stage") == 2
    assert (root / "digits_01/.stages/finetune_w1.0").read_text() == "0\n"
    assert (root / "summary.json").read_text() == summary


# 2. Numbers from the environment and the command line ----------------------------------------------------------

BAD_COUNTS = ["abc", "0", "-1", "1.5", "6", "010", "99999999999999999999", " 2", EVIL]
BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e999", "abc", "0x10", "1.5.0"]


def _rejected(done: subprocess.CompletedProcess, env: dict[str, str], name: str, pwned: Path) -> None:
    assert done.returncode == 64, done.stdout[-1000:] + done.stderr[-1000:]
    assert name in one_line(done)
    assert not stub_calls(env), "a stage ran"
    assert not pwned.exists()


@pytest.mark.parametrize("name", ["NUM_TASKS", "TOTAL_TASKS"])
@pytest.mark.parametrize("value", BAD_COUNTS)
def test_cpg_rejects_a_task_count_that_is_not_one_of_the_benchmarks(tmp_path, name, value):
    env = stub_env(tmp_path, digits_01=2)  # the old driver, missing the error, grew forever or crashed
    pwned = tmp_path / "pwned"
    done = driver("cpg.sh", "split_digits", str(tmp_path), "s", "1.5", cwd=tmp_path, timeout=30, **env,
                  CKPT_ROOT=str(tmp_path / "ck"), **{name: value.format(pwned)})
    _rejected(done, env, name, pwned)


@pytest.mark.parametrize("value", [*BAD_NUMBERS, "0.5", ""])
def test_cpg_rejects_a_max_width_that_is_not_a_finite_number_of_at_least_one(tmp_path, value):
    env = stub_env(tmp_path, digits_01=2)
    done = driver("cpg.sh", "split_digits", str(tmp_path), "s", value, cwd=tmp_path, timeout=30, **env,
                  CKPT_ROOT=str(tmp_path / "ck"))
    _rejected(done, env, "max width", tmp_path / "pwned")


@pytest.mark.parametrize("name, value", [*(("WIDTH_STEP", value) for value in [*BAD_NUMBERS, "0", "-0.5"]),
                                         ("SPARSITY_STEPS", "0.1 nan"), ("SPARSITY_STEPS", "0.5 1.0"),
                                         ("SPARSITY_STEPS", "abc")])
def test_cpg_rejects_steps_that_are_not_finite_numbers_in_range(tmp_path, name, value):
    env = stub_env(tmp_path, digits_01=2)
    done = driver("cpg.sh", "split_digits", str(tmp_path), "s", "inf" if name == "WIDTH_STEP" else "1.5",
                  cwd=tmp_path, timeout=30, **env, CKPT_ROOT=str(tmp_path / "ck"), **{name: value})
    assert done.returncode == 64 and not stub_calls(env), done.stderr[-1000:]
    assert any(word in one_line(done) for word in (name, "max width"))


@pytest.mark.parametrize("script, args, extra", [
    ("supsup_gnu.sh", ["permuted_digits", "oneshot", "g"], {}),
    ("supsup_gg.sh", [], {"BENCHMARK": "permuted_digits"}),
    ("piggyback.sh", ["split_digits"], {}),
])
@pytest.mark.parametrize("value", ["abc", "0", "1.5", "99999999999999999999", EVIL])
def test_every_driver_rejects_a_bad_num_tasks(tmp_path, script, args, extra, value):
    env = stub_env(tmp_path)
    pwned = tmp_path / "pwned"
    done = driver(script, *args, cwd=tmp_path, timeout=30, **env, **extra, DATA_ROOT=str(tmp_path),
                  CKPT_ROOT=str(tmp_path / "ck"), NUM_TASKS=value.format(pwned))
    _rejected(done, env, "NUM_TASKS", pwned)


@pytest.mark.parametrize("value", ["1 x", "0", "1.5", EVIL])
def test_supsup_gnu_rejects_eval_at_that_is_not_task_counts(tmp_path, value):
    env = stub_env(tmp_path)
    pwned = tmp_path / "pwned"
    done = driver("supsup_gnu.sh", "permuted_digits", "oneshot", "g", cwd=tmp_path, timeout=30, **env,
                  DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), NUM_TASKS="2", EVAL_AT=value.format(pwned))
    _rejected(done, env, "EVAL_AT", pwned)


# 4. One driver per run folder --------------------------------------------------------------------------------

LOCKED = {  # script, arguments, extra environment, run folder under the test's folder
    "cpg": ("cpg.sh", ["split_digits", "{tmp}", "s", "1.5"], {}, "ck/CPG/split_digits/s_seed1/digits_convnet"),
    "gnu": ("supsup_gnu.sh", ["permuted_digits", "oneshot", "g"], {"NUM_TASKS": "2"},
            "ck/SupSup/permuted_digits/gnu_seed1/lenet_300_100"),
    "gg": ("supsup_gg.sh", ["0", "1"], {"BENCHMARK": "permuted_digits", "NUM_TASKS": "2"},
           "ck/SupSup/permuted_digits/gg_er32_seed0/lenet_300_100"),
    "piggyback": ("piggyback.sh", ["split_digits"], {}, "ck/Piggyback/split_digits/default_seed1/digits_convnet"),
    "lines": ("subspace_lines.sh", [], {}, "ck/subspace/line/digits10/digits10/seed1"),
    "extract_digits": ("extract_digits.sh", ["{tmp}/out"], {}, "out"),
    "extract_synthetic": ("extract_synthetic.sh", ["{tmp}/out"], {"SEEDS": "1"}, "out"),
    "baseline": ("baseline_cifar100.sh", ["0"], {"NUM_TASKS": "2"},
                 "ck/baselines/cifar100/baseline_seed1/vgg16_bn_cifar100"),
}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOCKED))
def test_a_second_driver_on_the_same_run_folder_stops_naming_the_first(tmp_path, name):
    script, args, extra, folder = LOCKED[name]
    args = [arg.format(tmp=tmp_path) for arg in args]
    env = environment(**stub_env(tmp_path), **extra, DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"))
    with (tmp_path / "first.err").open("w") as errors:
        first = subprocess.Popen(["bash", str(REPO / "scripts" / script), *args], env={**env, "STUB_SLEEP": "60"},
                                 cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.time() + 60
        while not stub_calls(env) and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert stub_calls(env) and first.poll() is None, (tmp_path / "first.err").read_text()
        second = driver(script, *args, cwd=tmp_path, timeout=60, **{**env, "PYTHONPATH": str(REPO)})
        assert second.returncode == 64, second.stdout[-1000:] + second.stderr[-1000:]
        line = one_line(second)
        assert str(tmp_path / folder) in line and f"pid {first.pid}:" in line, line
        assert len(stub_calls(env)) == len({call["pid"] for call in stub_calls(env)}) == (2 if name == "gg" else 1)
        first.send_signal(signal.SIGTERM)  # and the sleeping stages go with it
        assert first.wait(timeout=30) == 143, (tmp_path / "first.err").read_text()
    finally:
        if first.poll() is None:
            first.kill()
    assert not [call["pid"] for call in stub_calls(env) if _alive(call["pid"])]
    third = driver(script, *args, cwd=tmp_path, timeout=60, **env)
    assert "in use" not in third.stderr, third.stderr


def test_an_interrupted_comparison_says_how_to_resume_and_keeps_each_methods_output(tmp_path):
    """The methods' drivers write to <CKPT_ROOT>/<method>.out: the terminal gets the comparison's own line,
    and a rerun appends to the .out instead of overwriting what the interrupted run said there."""
    ckpt = tmp_path / "ck"
    env = environment(**stub_env(tmp_path), SEEDS="1", SEED_WORKERS="1", DATA_ROOT=str(tmp_path),
                      CKPT_ROOT=str(ckpt), STUB_SLEEP="60")
    outputs = []
    for attempt in (1, 2):
        with (tmp_path / "err").open("w") as errors:
            comparison = subprocess.Popen(["bash", str(REPO / "scripts/compare_split_digits.sh")], env=env, cwd=REPO,
                                          stdout=subprocess.DEVNULL, stderr=errors)
        try:
            deadline = time.time() + 60
            while len(stub_calls(env)) < attempt and comparison.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            assert len(stub_calls(env)) == attempt, (tmp_path / "err").read_text()
            comparison.send_signal(signal.SIGTERM)
            assert comparison.wait(timeout=30) == 143
        finally:
            if comparison.poll() is None:
                comparison.kill()
        assert (tmp_path / "err").read_text().splitlines() == [
            "compare_split_digits.sh: interrupted by SIGTERM; run the same command again to resume "
            f"(run folder {ckpt})"]
        outputs.append((ckpt / "independent.out").read_text())
    assert outputs[1].startswith(outputs[0]) and len(outputs[1]) > len(outputs[0])


def test_a_lock_file_left_by_a_dead_driver_does_not_block(tmp_path):
    env = stub_env(tmp_path)
    root = tmp_path / "ck/subspace/line/digits10/digits10/seed1"
    root.mkdir(parents=True)
    (root / ".lock").write_text("pid 4194303: bash scripts/subspace_lines.sh\n")
    done = driver("subspace_lines.sh", cwd=tmp_path, **env, DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"))
    assert done.returncode == 0, done.stderr
    assert [call["args"][call["args"].index("--mode") + 1] for call in stub_calls(env)] == ["finetune", "inference"]



def test_a_run_folder_held_by_a_killed_driver_is_taken_over_with_one_line(tmp_path):
    env = stub_env(tmp_path)
    root = tmp_path / "ck/subspace/line/digits10/digits10/seed1"
    root.mkdir(parents=True)
    (root / ".lock").write_text("pid 4194303: bash scripts/subspace_lines.sh\n")
    started = time.monotonic()
    done = driver("subspace_lines.sh", cwd=tmp_path, **env, DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"))
    assert done.returncode == 0 and time.monotonic() - started < 20, done.stderr
    assert [line for line in done.stdout.splitlines() if "taking over" in line and "4194303" in line]
    assert (root / ".lock").read_text() == "", "a driver that ended must not be named as the folder's holder"


def immutable(folder: Path) -> None:
    """Make `folder` unwritable even for root (chattr +i), or skip where that is not allowed."""
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here")


@pytest.mark.parametrize(("script", "args"), [("lottery_digits.sh", ()), ("supsup_nns_permuted_mnist.sh", ()),
                                              ("extract_synthetic.sh", ("{ck}/extract",))])
def test_a_read_only_checkpoint_root_is_one_line_and_64(tmp_path, script, args):
    env = stub_env(tmp_path)
    ck = tmp_path / "ck"
    ck.mkdir()
    immutable(ck)
    try:
        done = driver(script, *[arg.format(ck=ck) for arg in args], cwd=tmp_path, **env, DATA_ROOT=str(tmp_path),
                      CKPT_ROOT=str(ck), SEEDS="1", BENCHMARK="permuted_digits")
    finally:
        subprocess.run(["chattr", "-i", str(ck)])
    assert done.returncode == 64, done.stderr
    assert f"cannot create the run folder {ck}/" in one_line(done)


def test_a_read_only_run_folder_that_exists_is_one_line_and_64(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    immutable(root)
    try:
        done = lib(f'lock_run_root "{root}"; echo locked', tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(root)])
    assert done.returncode == 64 and "locked" not in done.stdout
    assert f"cannot write the lock file {root}/.lock" in one_line(done)


def test_extract_with_no_seeds_is_refused_before_anything(tmp_path):
    env = stub_env(tmp_path)
    done = driver("extract_synthetic.sh", str(tmp_path / "out"), cwd=tmp_path, **env, SEEDS=" ")
    assert done.returncode == 64 and "SEEDS" in one_line(done)
    assert not (tmp_path / "out").exists() and not stub_calls(env)

# 5. Exit 65: a checkpoint a stage cannot read, or an output it cannot write -------------------------------------

def test_exit_65_is_reported_as_a_failed_read_or_write_naming_the_input_folder(tmp_path):
    log = tmp_path / "task/train.log"
    log.parent.mkdir()
    log.write_text("stage=prune exit=65\n")
    stage = f"""bash -c 'exit 65' stage --load_folder "{tmp_path}/in put" --save_folder "{tmp_path}/out" """
    done = lib(f'run_stage prune "{tmp_path}/task/.stages" "{log}" "0 6" {stage}', tmp_path)
    assert done.returncode == 65
    line = one_line(done)
    assert line == (f"Stopped: stage prune could not read its input ({tmp_path}/in put) or write its output "
                    f"(message above); log: {log}.")
    assert not (tmp_path / "task/.stages/prune").exists()


def test_exit_65_after_a_failed_write_is_not_called_a_bad_checkpoint(tmp_path):
    """main_normal.py exits 65 when a disk limit stops it writing its checkpoint, too: its own line says so."""
    write_failed = "echo 'main_normal.py: error: cannot write out/checkpoint.pth: No space left on device' >&2; exit 65"
    done = lib(f'run_stage finetune "{tmp_path}/.stages" "{tmp_path}/train.log" "0" bash -c "{write_failed}"',
               tmp_path)
    assert done.returncode == 65
    assert done.stderr.splitlines() == [
        "main_normal.py: error: cannot write out/checkpoint.pth: No space left on device",
        "Stopped: stage finetune could not read its input or write its output (message above)."]


def test_piggyback_stops_with_65_naming_the_model_it_could_not_read(tmp_path):
    env = stub_env(tmp_path, digits_23=65)
    done = driver("piggyback.sh", "split_digits", cwd=tmp_path, **env, DATA_ROOT=str(tmp_path),
                  CKPT_ROOT=str(tmp_path / "ck"), NUM_TASKS="3")
    assert done.returncode == 65, done.stderr
    line = one_line(done)
    assert str(tmp_path / "ck/Piggyback/split_digits/default_seed1/digits_convnet/digits_01/model") in line, line
    assert "log:" not in line  # the stand-in wrote no train.log: none is named
    assert [call["args"][call["args"].index("--dataset") + 1] for call in stub_calls(env)] == ["digits_01", "digits_23"]


def test_an_unexpected_code_names_the_log_only_when_it_exists(tmp_path):
    done = lib(f'run_stage s "{tmp_path}/.stages" "{tmp_path}/never/train.log" "0" bash -c "exit 7"', tmp_path)
    assert done.returncode == 1
    line = one_line(done)
    assert "unexpected code 7" in line and "train.log" not in line, line


# 6. Accuracy goals: a missing GOALS file, the advice on exit 3, and scripts/baseline.sh ---------------------------

def test_a_goals_file_that_does_not_exist_is_a_usage_error_before_any_stage(tmp_path):
    env = stub_env(tmp_path)
    missing = tmp_path / "no such goals.json"
    done = driver("cpg.sh", "split_digits", str(tmp_path), "s", "1.5", cwd=tmp_path, **env, GOALS=str(missing),
                  CKPT_ROOT=str(tmp_path / "ck"))
    assert done.returncode == 64 and str(missing) in one_line(done)
    assert not stub_calls(env) and not (tmp_path / "ck").exists()


def test_exit_3_names_the_baseline_script_of_the_benchmark_and_no_log_that_was_never_written(tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps({"digits_23": 0.9}))
    env = stub_env(tmp_path, digits_01=3)
    done = driver("cpg.sh", "split_digits", str(tmp_path), "s", "1.5", cwd=tmp_path, **env, GOALS=str(goals),
                  CKPT_ROOT=str(tmp_path / "ck"))
    assert done.returncode == 3
    line = one_line(done)
    assert "scripts/baseline.sh split_digits" in line and (REPO / "scripts/baseline.sh").is_file()
    assert "GOALS=" in line and "train.log" not in line, line


def test_baseline_takes_the_benchmarks_architecture_and_default_goal_file(tmp_path):
    env = stub_env(tmp_path)
    done = driver("baseline.sh", "split_digits", cwd=tmp_path, **env, DATA_ROOT=str(tmp_path),
                  CKPT_ROOT=str(tmp_path / "ck"), NUM_TASKS="2")
    assert done.returncode == 0, done.stderr
    calls = [call["args"] for call in stub_calls(env)]
    assert [call[call.index("--dataset") + 1] for call in calls] == ["digits_01", "digits_23"]
    for call in calls:
        assert call[call.index("--arch") + 1] == "digits_convnet" and call[call.index("--method") + 1] == "baseline"
        assert call[call.index("--logfile") + 1] == str(REPO / "logs/baseline_split_digits_acc.json")
        assert call[call.index("--save_folder") + 1].startswith(str(tmp_path / "ck/baselines/split_digits/baseline"))


@pytest.mark.parametrize("args", [[], ["nope"], ["split_digits", "x"]])
def test_baseline_rejects_a_bad_benchmark_or_gpu(tmp_path, args):
    env = stub_env(tmp_path)
    done = driver("baseline.sh", *args, cwd=tmp_path, **env, DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"))
    assert done.returncode == 64 and not stub_calls(env), done.stderr
    one_line(done)


def _goals_reach_cpg(tmp_path: Path, benchmark: str, data: Path, arch: str, tasks: list[str], **env: str) -> dict:
    """scripts/baseline.sh on BENCHMARK writes a goal file of TASKS that cpg.sh accepts: its first task's goal
    is the baseline's accuracy; the goals written."""
    goals = tmp_path / "goals.json"
    done = driver("baseline.sh", benchmark, cwd=tmp_path, timeout=300, DATA_ROOT=str(data),
                  CKPT_ROOT=str(tmp_path / "ck"), LOGFILE=str(goals), **env)
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads(goals.read_text())
    assert list(written) == tasks
    cpg = driver("cpg.sh", benchmark, str(data), "goals", "1.5", cwd=tmp_path, timeout=300, **QUICK,
                 NUM_TASKS="1", GOALS=str(goals), CKPT_ROOT=str(tmp_path / "ck"))
    assert cpg.returncode == 0, cpg.stderr[-2000:]
    log = (tmp_path / f"ck/CPG/{benchmark}/goals_seed1/{arch}/{tasks[0]}/train.log").read_text()
    assert f"goal={written[tasks[0]]:.4f}" in log
    return written


@pytest.mark.slow
def test_baseline_goals_are_accepted_by_cpg(data_root, tmp_path):
    written = _goals_reach_cpg(tmp_path, "split_digits", data_root, "digits_convnet",
                               ["digits_01", "digits_23", "digits_45", "digits_67", "digits_89"], EPOCHS="1",
                               OMP_NUM_THREADS="1")
    assert all(0.0 <= value <= 1.0 for value in written.values())


def _mnist(root: Path) -> None:
    """MNIST-format IDX files (magic 0, 0, 8, dimensions; big-endian sizes; the bytes) of a few 28x28 digits
    whose class is where a bright square sits, under root/MNIST/raw."""
    import numpy as np

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for split, count in (("train", 400), ("t10k", 100)):
        labels = np.arange(count) % 10
        images = rng.randint(0, 40, (count, 28, 28))
        for index, label in enumerate(labels):
            images[index, 2 * label:2 * label + 8, 4:12] += 200
        for name, array in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
            (raw / name).write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_baseline_on_split_mnist_writes_goals_cpg_accepts(tmp_path):
    """On MNIST-format files (made here: no download), as a user of split_mnist would run it."""
    data = tmp_path / "data"
    _mnist(data)
    _goals_reach_cpg(tmp_path, "split_mnist", data, "lenet_300_100",
                     ["mnist_01", "mnist_23", "mnist_45", "mnist_67", "mnist_89"], EPOCHS="2")


# 7. The interpreter: PYTHON, else the project's .venv, else a python on PATH that has torch ---------------------

def _clone(tmp_path: Path) -> Path:
    """The repository's code (no .venv) in a folder of its own."""
    clone = tmp_path / "clone"
    for name in ("scripts", "tools", "utils", "models"):
        shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "unforget", clone / "unforget", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "main_normal.py", clone)
    return clone


def _bare_environment(tmp_path: Path, path_first: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in environment(**stub_env(tmp_path)).items()
           if key not in ("PYTHON", "PYTHONPATH", "VIRTUAL_ENV")}
    if path_first:
        env["PATH"] = f"{path_first}:{env['PATH']}"
    return {**env, "DATA_ROOT": str(tmp_path), "CKPT_ROOT": str(tmp_path / "ck")}


def _clone_driver(clone: Path, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return run(["bash", str(clone / "scripts/subspace_lines.sh")], tmp_path, env)


def test_drivers_use_the_projects_venv_when_python_is_not_set(tmp_path):
    clone = _clone(tmp_path)
    (clone / ".venv/bin").mkdir(parents=True)
    (clone / ".venv/bin/python").symlink_to(tmp_path / "python_stub")
    env = _bare_environment(tmp_path, path_first=None)
    done = _clone_driver(clone, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert [call["args"][0] for call in stub_calls(env)] == ["main_normal.py", "main_normal.py"]


def test_without_venv_or_torch_the_driver_says_how_to_make_the_environment(tmp_path):
    clone = _clone(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n")  # a python without torch (or anything else)
    (fake / "python").chmod(0o755)
    done = _clone_driver(clone, _bare_environment(tmp_path, fake), tmp_path)
    assert done.returncode == 64
    line = one_line(done)
    assert "torch" in line and "bash scripts/quickstart.sh" in line
    assert "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt" in line


def test_without_venv_a_python_on_path_that_has_torch_is_used(tmp_path):
    clone = _clone(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").symlink_to(tmp_path / "python_stub")
    env = _bare_environment(tmp_path, fake)
    # the torch check runs for real
    real = 'if args[:1] == ["-c"] or args[:1] == ["-m"] and args[1].startswith("tools."):'
    (tmp_path / "python_stub").write_text(STUB.replace('if args[:1] == ["-m"] and args[1].startswith("tools."):', real))
    done = _clone_driver(clone, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(stub_calls(env)) == 2


# 8. One CPU thread per stage unless the user says otherwise ---------------------------------------------------

THREADED = {  # script, arguments, extra environment
    "cpg": ("cpg.sh", ["split_digits", "{tmp}", "s", "1.5"], {"NUM_TASKS": "1"}),
    "gnu": ("supsup_gnu.sh", ["permuted_digits", "oneshot", "g"], {"NUM_TASKS": "1"}),
    "gg": ("supsup_gg.sh", [], {"BENCHMARK": "permuted_digits", "NUM_TASKS": "1"}),
    "piggyback": ("piggyback.sh", ["split_digits"], {"NUM_TASKS": "1"}),
    "lines": ("subspace_lines.sh", [], {}),
    "baseline": ("baseline.sh", ["split_digits"], {"NUM_TASKS": "1"}),
    "extract_synthetic": ("extract_synthetic.sh", ["{tmp}/out"], {"SEEDS": "1"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(THREADED))
@pytest.mark.parametrize("setting, gpu, expected", [
    ({"DEVICE": "cpu"}, True, ("1", "1")),
    ({"DEVICE": "cpu", "OMP_NUM_THREADS": "3"}, False, ("3", "3")),
    ({"DEVICE": "cpu", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "2"}, False, ("3", "2")),
    ({}, False, ("1", "1")),  # DEVICE auto and no GPU to be seen
    ({}, True, (None, None)),  # a GPU run keeps torch's own
    ({"DEVICE": "cuda"}, False, (None, None)),
])
def test_cpu_runs_use_one_thread_unless_told(tmp_path, name, setting, gpu, expected):
    script, args, extra = THREADED[name]
    env = {key: value for key, value in environment(**stub_env(tmp_path), **extra, DATA_ROOT=str(tmp_path),
                                                      CKPT_ROOT=str(tmp_path / "ck")).items()
           if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DEVICE", "CUDA_VISIBLE_DEVICES")}
    fake = tmp_path / "bin"  # an nvidia-smi that finds a GPU or none, whatever this machine has
    fake.mkdir()
    (fake / "nvidia-smi").write_text(f"#!/bin/sh\nexit {0 if gpu else 1}\n")
    (fake / "nvidia-smi").chmod(0o755)
    run(["bash", str(REPO / "scripts" / script), *(arg.format(tmp=tmp_path) for arg in args)], tmp_path,
        {**env, **setting, "PATH": f"{fake}:{env['PATH']}"})
    calls = stub_calls(env)
    assert calls, (tmp_path / "run.err").read_text()
    assert {(call["threads"]["OMP_NUM_THREADS"], call["threads"]["MKL_NUM_THREADS"]) for call in calls} == {expected}


# 9. SupSup GNu: one trained model, one folder per evaluation ---------------------------------------------------

def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_supsup_gnu_evaluates_the_same_masks_with_another_objective_without_training(data_root, tmp_path):
    env = {"NUM_TASKS": "3", "EPOCHS": "1", "EVAL_AT": "1 2", "DATA_ROOT": str(data_root),
           "CKPT_ROOT": str(tmp_path / "ck"), "OMP_NUM_THREADS": "1"}
    root = tmp_path / "ck/SupSup/permuted_digits/gnu_seed1/lenet_300_100"
    first = driver("supsup_gnu.sh", "permuted_digits", "oneshot", "g", cwd=tmp_path, timeout=300, **env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert [first.stdout.count(f"task_{k}: running") for k in (1, 2, 3)] == [1, 1, 1]
    checkpoint = (root / "model/checkpoint.pth").read_bytes()
    adapt = _csv(root / "oneshot_g/adapt_results.csv")  # every task learned so far, after 1, 2 and all 3
    first_adapt = without_dates(root / "oneshot_g/adapt_results.csv")
    assert [(row["Num Tasks Learned"], row["Task"]) for row in adapt] == [
        ("1", "pdigits_00"), ("2", "pdigits_00"), ("2", "pdigits_01"),
        ("3", "pdigits_00"), ("3", "pdigits_01"), ("3", "pdigits_02")]
    assert adapt[0]["Adapt Val"] == adapt[0]["Current Val"]  # one mask only: its task is always found
    assert f"every task after each of 1 2 3 tasks: {root}/oneshot_g/adapt_results.csv" in first.stdout

    second = driver("supsup_gnu.sh", "permuted_digits", "oneshot", "h", cwd=tmp_path, timeout=300, **env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [second.stdout.count(f"task_{k}: done before") for k in (1, 2, 3)] == [1, 1, 1]
    assert "task_1: running" not in second.stdout and "adapt_1: running" in second.stdout
    assert (root / "model/checkpoint.pth").read_bytes() == checkpoint
    assert json.loads((root / "oneshot_h/summary.json").read_text())["objective"] == "h"
    assert json.loads((root / "oneshot_g/summary.json").read_text())["objective"] == "g"
    rows = [(row["Num Tasks Learned"], row["Task"]) for row in _csv(root / "oneshot_h/adapt_results.csv")]
    assert rows == [(row["Num Tasks Learned"], row["Task"]) for row in adapt]
    assert [row["task"] for row in _csv(root / "oneshot_h/results.csv")] == [
        "pdigits_00", "pdigits_01", "pdigits_02", "average"]

    again = driver("supsup_gnu.sh", "permuted_digits", "oneshot", "g", cwd=tmp_path, timeout=300, **env)
    assert again.returncode == 0 and "adapt_2: done before" in again.stdout
    assert without_dates(root / "oneshot_g/adapt_results.csv") == first_adapt  # the time each one ran aside

    without = driver("supsup_gnu.sh", "permuted_digits", "binary", "h", cwd=tmp_path, timeout=300,
                     **{**env, "EVAL_AT": ""})
    assert without.returncode == 0, without.stderr[-2000:]
    rows = [(row["Num Tasks Learned"], row["Task"]) for row in _csv(root / "binary_h/adapt_results.csv")]
    assert rows == [("3", "pdigits_00"), ("3", "pdigits_01"), ("3", "pdigits_02")]  # the final evaluation only


@pytest.mark.parametrize("args", [["permuted_digits", "oneshoot", "g"], ["permuted_digits", "oneshot", "x"]])
def test_supsup_gnu_rejects_an_unknown_adaptor_or_objective_before_training(tmp_path, args):
    env = stub_env(tmp_path)
    done = driver("supsup_gnu.sh", *args, cwd=tmp_path, **env, DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path))
    assert done.returncode == 64 and not stub_calls(env)
    one_line(done)


# 10. The README's commands ------------------------------------------------------------------------------------

def test_the_readmes_report_commands_pass_the_data_root():
    text = " ".join((REPO / "README.md").read_text().split())  # commands may wrap over lines
    commands = [part.split("`")[0] for part in text.split("python -m tools.report")[1:]]
    with_root = [command for command in commands if "--root" in command]
    assert with_root and all("--data_root" in command for command in with_root), with_root


def test_the_scripts_the_readme_names_exist():
    names = set(re.findall(r"scripts/[\w./]+\.sh", (REPO / "README.md").read_text()))
    assert "scripts/baseline.sh" in names
    assert [name for name in sorted(names) if not (REPO / name).is_file()] == []
