"""Drivers stopped by SIGINT, SIGTERM or SIGKILL at several moments, and the warm-start server under signals.

The signal goes to the driver's PID only, not to its process group: the stages must die with their driver.
Afterwards no process of the run is left, and a rerun of the same command ends with the same results as a
run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, environment
from tests.helpers.drivers import CRASH_WORDS, Driver, assert_nothing_left, processes, results, run, start, wait_until

pytestmark = pytest.mark.slow

QUICK = {"FINETUNE_EPOCHS": "6", "PRUNE_EPOCHS": "3", "RETRAIN_EPOCHS": "2", "BATCH_SIZE": "16",
         "PRUNING_INTERVAL": "1", "PRUNING_FREQUENCY": "3", "OMP_NUM_THREADS": "1"}

CPG = Driver("cpg.sh", ("split_digits", "{data}", "s", "1.5"), {**QUICK, "NUM_TASKS": "2"},
             "CPG/split_digits/s_seed1/digits_convnet", ("summary.json",))
GNU = Driver("supsup_gnu_permuted_mnist.sh", (), {"BENCHMARK": "permuted_digits", "NUM_TASKS": "3", "EPOCHS": "1",
                                                   "EVAL_AT": "1 2"},
             "SupSup/permuted_digits/gnu_seed1/lenet_300_100",
             ("oneshot_g/results.csv", "oneshot_g/summary.json", "oneshot_g/adapt_results.csv"))
LINES = Driver("subspace_lines.sh", (), {"EPOCHS": "2"}, "subspace/line/digits10/digits10/seed1",
               ("summary.json", "sweep.csv"))
CURVES = Driver("subspace_curves.sh", (), {"EPOCHS": "2"}, "subspace/curve/digits10/digits10/seed1",
                ("summary.json", "sweep.csv"))
SIMPLEX = Driver("subspace_simplex.sh", (), {"EPOCHS": "2"}, "subspace/simplex3/digits10/digits10/seed1",
                 ("summary.json", "sweep.csv"))
HOP = Driver("supsup_hop_split_mnist.sh", (), {"BENCHMARK": "split_digits", "NUM_TASKS": "3", "HIDDEN": "256",
                                               "EPOCHS": "3", "STEPS": "5"},
             "SupSup/split_digits/hopfield/h256_seed1", ("summary.json", "results.csv"))
DRIVERS = {"cpg": CPG, "gnu": GNU, "lines": LINES, "curves": CURVES, "simplex": SIMPLEX, "hop": HOP}


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """Each driver's results from a run that was never interrupted (computed once)."""
    cache: dict[str, dict[str, bytes]] = {}

    def get(name: str) -> dict[str, bytes]:
        if name not in cache:
            ckpt = tmp_path_factory.mktemp(f"reference_{name}")
            code, out, err = run(DRIVERS[name], data_root, ckpt, ckpt / "logs")
            assert code == 0, out[-2000:] + err[-2000:]
            cache[name] = results(DRIVERS[name], ckpt)
        return cache[name]
    return get


@dataclass(frozen=True)
class Moment:
    """When to send the signal: once `text` is printed `times` times (a stage starting) and, during a stage,
    once one of its processes runs; or, between stages, once the marker `marker` appears."""
    text: str = ""
    times: int = 1
    marker: str = ""

    def reached(self, out: Path, root: Path) -> bool:
        if self.marker:
            return (root / self.marker).exists()
        return out.read_text().count(self.text) >= self.times and bool(processes(-1, str(root)))


CASES = [
    ("cpg", signal.SIGINT, Moment("finetune_w1.0: running", times=2)),  # finetune of the second task
    ("cpg", signal.SIGTERM, Moment("prune_0.2: running")),
    ("cpg", signal.SIGKILL, Moment(marker="digits_01/.stages/prune_0.4")),  # between two stages
    ("cpg", signal.SIGTERM, Moment(marker="digits_01/.stages/choose_pruning_ratio")),
    ("cpg", signal.SIGKILL, Moment("retrain: running")),
    ("gnu", signal.SIGINT, Moment("task_2: running")),
    ("gnu", signal.SIGTERM, Moment("adapt_2: running")),
    ("gnu", signal.SIGKILL, Moment(marker=".stages/task_1")),
    ("lines", signal.SIGINT, Moment("train: running")),
    ("lines", signal.SIGTERM, Moment("evaluate: running")),
    ("lines", signal.SIGKILL, Moment("train: running")),
    ("curves", signal.SIGKILL, Moment("train: running")),
    ("curves", signal.SIGTERM, Moment(marker=".stages/train")),  # between training and evaluation
    ("curves", signal.SIGKILL, Moment("evaluate: running")),
    ("simplex", signal.SIGTERM, Moment("train: running")),
    ("simplex", signal.SIGKILL, Moment(marker=".stages/train")),
    ("simplex", signal.SIGINT, Moment("evaluate: running")),
    ("hop", signal.SIGKILL, Moment("learn: running")),
    ("hop", signal.SIGTERM, Moment("learn: running")),
    ("hop", signal.SIGTERM, Moment(marker=".stages/learn")),  # after the learn stage, as the masks are recovered
    ("hop", signal.SIGKILL, Moment(marker=".stages/learn")),
]


@pytest.mark.parametrize("name, signum, moment", CASES,
                         ids=[f"{name}-{signum.name}-{moment.text or moment.marker}" for name, signum, moment in CASES])
def test_a_signal_to_the_driver_stops_its_stages_and_a_rerun_ends_the_same(name, signum, moment, reference,
                                                                           data_root, tmp_path):
    driver = DRIVERS[name]
    expected = reference(name)
    ckpt = tmp_path / "ck"
    root = ckpt / driver.root
    process, out, err = start(driver.command(data_root), driver.environment(data_root, ckpt), tmp_path / "first")
    try:
        reached = wait_until(lambda: moment.reached(out, root) or process.poll() is not None, 300)
        assert reached and process.poll() is None, "the driver ended before the moment: " + out.read_text()[-2000:]
        os.kill(process.pid, signum)  # the driver alone, not its process group
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), err.read_text()[-2000:]
    messages = out.read_text() + err.read_text()
    assert not [word for word in CRASH_WORDS if word in messages], messages[-3000:]
    if signum != signal.SIGKILL:
        last = err.read_text().strip().splitlines()[-1]
        assert f"interrupted by {signum.name}" in last and "run the same command again" in last, last
        assert str(root) in last

    assert_nothing_left(process.pid, root)

    code, rerun_out, rerun_err = run(driver, data_root, ckpt, tmp_path / "rerun")
    assert code == 0, rerun_out[-2000:] + rerun_err[-2000:]
    assert not [word for word in CRASH_WORDS if word in rerun_out + rerun_err]
    assert results(driver, ckpt) == expected


LONG = {"cpg": {"FINETUNE_EPOCHS": "400"}, "gnu": {"EPOCHS": "300"}, "lines": {"EPOCHS": "200"},
        "curves": {"EPOCHS": "200"}, "simplex": {"EPOCHS": "200"}, "hop": {"EPOCHS": "200"}}


@pytest.mark.parametrize("name", sorted(LONG))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_long_stage_dies_within_seconds_of_its_driver(name, signum, data_root, tmp_path):
    """A stage that would run on for many seconds is gone 3 s after its driver got the signal."""
    driver = DRIVERS[name]
    ckpt = tmp_path / "ck"
    root = ckpt / driver.root
    env = {**driver.environment(data_root, ckpt), **LONG[name]}
    process, out, _ = start(driver.command(data_root), env, tmp_path / "first")
    try:
        assert wait_until(lambda: Moment("running").reached(out, root) or process.poll() is not None, 300)
        time.sleep(1)  # well into the stage
        assert process.poll() is None
        os.kill(process.pid, signum)
        process.wait(timeout=30)
        wait_until(lambda: not processes(-1, str(root)), 3, 0.05)
        left = processes(-1, str(root))
    finally:
        for pid in [int(line.split()[0]) for line in processes(process.pid, str(root))]:
            os.kill(pid, signal.SIGKILL)  # what an old driver left behind
        if process.poll() is None:
            process.kill()
    assert not left, left


def test_ctrl_c_at_a_terminal_stops_the_whole_run_quietly(data_root, tmp_path, reference):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, during a warm-start stage."""
    expected = reference("cpg")
    ckpt = tmp_path / "ck"
    root = ckpt / CPG.root
    process, out, err = start(CPG.command(data_root), CPG.environment(data_root, ckpt), tmp_path / "first")
    try:
        moment = Moment("prune_0.3: running")
        assert wait_until(lambda: moment.reached(out, root) or process.poll() is not None, 300)
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130, err.read_text()
    assert not [word for word in CRASH_WORDS if word in out.read_text() + err.read_text()], err.read_text()
    assert "interrupted by SIGINT" in err.read_text().strip().splitlines()[-1]
    assert_nothing_left(process.pid, root)
    code, rerun_out, rerun_err = run(CPG, data_root, ckpt, tmp_path / "rerun")
    assert code == 0, rerun_err[-2000:]
    assert results(CPG, ckpt) == expected


# The warm-start server, its stage children and their clients under SIGINT and SIGTERM --------------------------

@pytest.fixture
def server(tmp_path):
    """A warm-start server started as a terminal would start it (SIGINT not ignored)."""
    path = tmp_path / "stages.sock"
    errors = (tmp_path / "server.err").open("w")
    process = subprocess.Popen([sys.executable, "-m", "utils.warm_start", "--socket", str(path), "--parent",
                                str(os.getpid())], cwd=REPO, env=environment(), stderr=errors, start_new_session=True)
    assert wait_until(lambda: path.exists(), 60, 0.05)
    yield process, path
    if process.poll() is None:
        process.kill()
    process.wait()
    errors.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(stat[1]) == pid and stat[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_server_exits_quietly_on_a_signal(server, tmp_path, signum):
    process, _ = server
    process.send_signal(signum)
    assert process.wait(timeout=30) == 128 + signum
    assert (tmp_path / "server.err").read_text() == ""


def _long_stage(data_root: Path, tmp_path: Path, socket: Path) -> subprocess.Popen:
    args = ["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root), "--epochs", "500",
            "--batch_size", "16", "--save_folder", str(tmp_path / "model"), "--jsonfile", str(tmp_path / "record.txt"),
            "--device", "cpu"]
    err = (tmp_path / "client.err").open("w")
    return subprocess.Popen([sys.executable, str(REPO / "main_normal.py"), *args], cwd=REPO, stderr=err,
                            stdout=subprocess.DEVNULL, env=environment(CPG_STAGE_SERVER=str(socket)))


@pytest.mark.parametrize("target", ["child", "client"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stage_stops_quietly_on_a_signal_to_its_child_or_its_client(server, data_root, tmp_path, target, signum):
    process, socket = server
    client = _long_stage(data_root, tmp_path, socket)
    try:
        assert wait_until(lambda: _children(process.pid) or client.poll() is not None, 60, 0.05)
        assert client.poll() is None, (tmp_path / "client.err").read_text()
        child = _children(process.pid)[0]
        time.sleep(1)  # well into the stage
        os.kill(child if target == "child" else client.pid, signum)
        code = client.wait(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
    expected = 128 + signum if (target == "child" or signum == signal.SIGINT) else -signal.SIGTERM
    assert code == expected
    errors = (tmp_path / "client.err").read_text()
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors, errors
    assert wait_until(lambda: not _children(process.pid), 10, 0.05), "the stage's child outlived its client"
    assert process.poll() is None, "the server must serve on"
    assert (tmp_path / "server.err").read_text() == ""


def test_no_command_in_the_scripts_holds_two_command_substitutions():
    """Bash 5.2 can run a trap while it parses a command's second substitution and then fails to parse the
    trap ("trap: unexpected EOF while looking for matching `)'", exit 2): the driver would die uncleanly."""
    offending = []
    for script in sorted((REPO / "scripts").glob("**/*.sh")):
        lines = script.read_text().splitlines()
        number = 0
        while number < len(lines):
            first, command = number + 1, lines[number]
            while command.endswith("\\") and number + 1 < len(lines):
                number += 1
                command = command[:-1] + lines[number]
            number += 1
            code = "" if command.lstrip().startswith("#") else command.split(" # ")[0]
            if code.count("$(") + code.count("`") // 2 > 1:
                offending.append(f"{script.relative_to(REPO)}:{first}: {code.strip()}")
    assert not offending, "\n".join(offending)
