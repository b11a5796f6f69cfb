"""Drivers run as a user runs them, and the processes they leave: the helpers of the signal and kill tests.

A driver starts in its own session, so that every process it makes can be found by its session id; its
output goes to files. A run's results are compared without the dates some of them hold (`without_dates`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO, environment, without_dates

CRASH_WORDS = ("Traceback", "KeyboardInterrupt", "unexpected code", "unbound variable")


@dataclass(frozen=True)
class Driver:
    script: str
    args: tuple[str, ...]  # "{data}" stands for the data root
    env: dict[str, str]
    root: str  # the run folder under CKPT_ROOT
    results: tuple[str, ...]  # files under the run folder that must equal an uninterrupted run's

    def command(self, data_root: Path) -> list[str]:
        return ["bash", str(REPO / "scripts" / self.script), *(arg.format(data=data_root) for arg in self.args)]

    def environment(self, data_root: Path, ckpt: Path) -> dict[str, str]:
        return environment(**{**self.env, "DATA_ROOT": str(data_root), "CKPT_ROOT": str(ckpt), "OMP_NUM_THREADS": "1"})


def start(command: list[str], env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, Path, Path]:
    """The driver in its own session (so its processes can be found), its output in files."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "driver.out", folder / "driver.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO, start_new_session=True)
    return process, out, err


def run(driver: Driver, data_root: Path, ckpt: Path, folder: Path) -> tuple[int, str, str]:
    """The driver run to its end: its exit code, standard output and standard error."""
    process, out, err = start(driver.command(data_root), driver.environment(data_root, ckpt), folder)
    try:
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    return code, out.read_text(), err.read_text()


def results(driver: Driver, ckpt: Path) -> dict[str, bytes]:
    return {name: without_dates(ckpt / driver.root / name) for name in driver.results}


def processes(session: int, needle: str) -> list[str]:
    """Live processes (zombies aside) in the driver's session or with `needle` in their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] != "Z" and (int(stat[3]) == session or needle in command):
            found.append(f"{entry.name} {command[:200]}")
    return found


def wait_until(condition, timeout: float, step: float = 0.01) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def assert_nothing_left(session: int, root: Path) -> None:
    """Within 10 s (the warm-start server checks for its driver once a second) no process of the run is left.
    What is left is named, and killed: a failing test must not leave it running on the machine."""
    wait_until(lambda: not processes(session, str(root)), 10, 0.1)
    left = processes(session, str(root))
    for line in left:
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, "left behind: " + "; ".join(left)
