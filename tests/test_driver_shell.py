"""Shell logic of the drivers and scripts/lib.sh, mostly with small stand-ins for the Python stages."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import REPO, environment

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
