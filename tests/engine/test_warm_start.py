"""Warm start: stages run in children of a server that imported torch once, with the same results."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, environment, run_main
from unforget.utils.warm_client import ENV_VAR, STARTED, run_remote
from unforget.utils.warm_start import _receive_request


@pytest.fixture
def server(tmp_path):
    path = tmp_path / "stages.sock"
    process = subprocess.Popen([sys.executable, "-m", "utils.warm_start", "--socket", str(path), "--parent",
                                str(os.getpid())], cwd=REPO, env=environment())
    deadline = time.time() + 60
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    yield path
    process.kill()
    process.wait()


def test_without_a_server_the_stage_runs_in_its_own_process(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert run_remote(["--mode", "inference"]) is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nothing-listens-here"))
    assert run_remote(["--mode", "inference"]) is None


def test_the_server_returns_exit_codes_and_the_callers_streams(server, monkeypatch, capfd, data_root):
    monkeypatch.setenv(ENV_VAR, str(server))
    assert run_remote(["--mode", "nope", "--dataset", "digits_01", "--data_root", str(data_root)]) == 64
    assert "invalid choice" in capfd.readouterr().err


def _tool(server: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess:
    extra = {ENV_VAR: str(server)} if server else {}
    return subprocess.run([sys.executable, "-m", "utils.warm_run", *args], cwd=REPO, capture_output=True,
                          text=True, env=environment(**extra, **env))


@pytest.mark.slow
def test_a_tool_runs_the_same_warm_and_cold_and_a_warm_stage_reports_its_cpu(server, tmp_path):
    """A tool handed to the server prints what it prints run by itself, names itself in a usage error, and
    writes no stage's CPU record; a stage's child writes its own CPU seconds where CPG_STAGE_CPU says."""
    capacity = ["tools.capacity", "--arch", "digits_convnet", "--width", "1.5"]
    cold, warm = _tool(None, *capacity), _tool(server, *capacity, CPG_STAGE_CPU=str(tmp_path / "tool.cpu"))
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    assert warm.stdout == cold.stdout and float(warm.stdout) > 1
    assert not (tmp_path / "tool.cpu").exists()
    for bad in (["tools.capacity", "--width", "1.5"], ["tools.report", "--no_such_flag"]):
        alone = subprocess.run([sys.executable, "-m", *bad], cwd=REPO, capture_output=True, text=True,
                               env=environment())
        for run in (_tool(None, *bad), _tool(server, *bad)):
            assert (run.returncode, run.stderr) == (64, alone.stderr)

    cpu = tmp_path / "stage.cpu"
    stage = run_main("--mode", "nope", **{ENV_VAR: str(server), "CPG_STAGE_CPU": str(cpu)})
    assert stage.returncode == 64, stage.stderr
    assert float(cpu.read_text()) > 0


@pytest.mark.slow
def test_a_stage_gives_the_same_checkpoint_warm_and_cold(server, data_root, tmp_path):
    metas = []
    for name, extra in (("cold", {}), ("warm", {ENV_VAR: str(server)})):
        result = run_main("--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                          "--epochs", "2", "--batch_size", "16", "--save_folder", str(tmp_path / name),
                          "--jsonfile", str(tmp_path / name / "record.txt"), "--device", "cpu",
                          "--max_allowed_network_width_multiplier", "1.0", **extra)
        assert result.returncode == 0, result.stderr
        assert "stage=finetune" in result.stdout
        metas.append(json.loads((tmp_path / name / "meta.json").read_text()))
    for meta in metas:  # the runs differ only in where they write
        for flag in ("save_folder", "jsonfile"):
            meta["settings"].pop(flag)
    assert metas[0] == metas[1]
    assert (tmp_path / "cold/checkpoint.pth").read_bytes() == (tmp_path / "warm/checkpoint.pth").read_bytes()


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line names `text` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("moment", [0.3, 1.2, "listening"])
def test_a_driver_killed_while_its_server_starts_leaves_neither_server_nor_lock(tmp_path, moment):
    """SIGKILL runs no trap: the server must notice its driver's death by itself, at any moment of start-up."""
    root = tmp_path / "run"
    script = (f'source scripts/lib.sh; lock_run_root "{root}"; launch_stage_server supsup; await_stage_server; '
              f'touch "{tmp_path}/$([[ -S $CPG_STAGE_SERVER ]] && echo up || echo down)"; sleep 60 {{LOCK_FD}}>&-')
    driver = subprocess.Popen(["bash", "-c", script], cwd=REPO, env=environment(TMPDIR=str(tmp_path)))
    if moment == "listening":
        deadline = time.time() + 120
        while not list(tmp_path.glob("up")) + list(tmp_path.glob("down")) and time.time() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "up").exists(), "the server did not start"
    else:
        time.sleep(moment)
    driver.kill()
    driver.wait()
    deadline = time.time() + 10
    while processes_mentioning(str(tmp_path)) and time.time() < deadline:
        time.sleep(0.1)
    assert not processes_mentioning(str(tmp_path))
    # a `sleep 0.05` of await_stage_server's loop may hold the inherited lock for its last 50 ms
    lock = subprocess.run(["flock", "-w", "2", str(root / ".lock"), "true"])
    assert lock.returncode == 0, "the run folder's lock outlived the driver"


def _one_answer(path: Path, answer: bytes) -> threading.Thread:
    """A stand-in server that reads one request, sends `answer` and hangs up (a server dying mid-request)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        with listener, listener.accept()[0] as conn:
            _receive_request(conn)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_server_gone_before_a_child_started_the_stage_leaves_the_stage_to_its_caller(monkeypatch, tmp_path,
                                                                                        capfd):
    """Its driver killed while a request waited: no stage ran, so no error; the caller runs the stage itself."""
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "stages.sock"))
    thread = _one_answer(tmp_path / "stages.sock", b"")
    assert run_remote(["--mode", "inference"]) is None
    thread.join(10)
    assert capfd.readouterr().err == ""


def test_a_stage_child_gone_without_a_code_is_an_error(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "stages.sock"))
    thread = _one_answer(tmp_path / "stages.sock", STARTED)
    assert run_remote(["--mode", "inference"]) == 1
    thread.join(10)
    assert "ended without an exit code" in capfd.readouterr().err


def test_the_client_half_loads_nothing_a_stage_would_pay_for():
    """main_normal.py imports the client before every warm stage: it must not pull in json, threading,
    pathlib, anything of torch, nor socket.py's or typing's own imports (enum, selectors, re; each import is
    paid once per stage, 59 times in the quickstart)."""
    probe = ("import sys; import unforget.utils.warm_client; "
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('json', 'threading', 'pathlib', 'torch', 'numpy', 'argparse', 'dataclasses', 'typing', 'enum', "
             "'selectors', 're', 'socket', 'signal', 'array'))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, env=environment(),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
