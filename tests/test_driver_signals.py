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
from pathlib import Path

import pytest

from tests.conftest import REPO, environment

pytestmark = pytest.mark.slow


def _wait_until(condition, timeout: float, step: float = 0.01) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# The warm-start server, its stage children and their clients under SIGINT and SIGTERM --------------------------

@pytest.fixture
def server(tmp_path):
    """A warm-start server started as a terminal would start it (SIGINT not ignored)."""
    path = tmp_path / "stages.sock"
    errors = (tmp_path / "server.err").open("w")
    process = subprocess.Popen([sys.executable, "-m", "utils.warm_start", "--socket", str(path)], cwd=REPO,
                               env=environment(), stderr=errors, start_new_session=True)
    assert _wait_until(lambda: path.exists(), 60, 0.05)
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
        assert _wait_until(lambda: _children(process.pid) or client.poll() is not None, 60, 0.05)
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
    assert _wait_until(lambda: not _children(process.pid), 10, 0.05), "the stage's child outlived its client"
    assert process.poll() is None, "the server must serve on"
    assert (tmp_path / "server.err").read_text() == ""

