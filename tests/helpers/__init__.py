"""What the tests share: the repository, its interpreter's environment, and the entry and drivers run as a
user runs them. Fixtures live in tests/conftest.py; builders of files in tests/helpers/files.py; drivers'
processes in tests/helpers/drivers.py; the drivers' stand-in PYTHON in tests/helpers/stand_in.py; a tiny
CIFAR-100 in tests/helpers/cifar.py. No test module imports another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
THREADS = os.environ.get("TEST_THREADS", "1")
"""Every process a test starts computes on this many threads, as the session does (tests/conftest.py)."""
QUICK = {"FINETUNE_EPOCHS": "6", "PRUNE_EPOCHS": "3", "RETRAIN_EPOCHS": "2", "BATCH_SIZE": "16",
         "PRUNING_INTERVAL": "1", "PRUNING_FREQUENCY": "3"}
"""Short CPG stages for driver runs on split_digits."""


def environment(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "DEVICE": "cpu", "OMP_NUM_THREADS": THREADS}
    env.update(overrides)
    return env


def run_main(*args: str, **env: str) -> subprocess.CompletedProcess:
    """main_normal.py in a fresh process (exit codes and messages as a driver sees them)."""
    return subprocess.run([sys.executable, str(REPO / "main_normal.py"), *args], capture_output=True, text=True,
                          env=environment(**env), cwd=REPO, timeout=300)


def run_driver(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                          env=environment(**env), cwd=REPO, timeout=900)


def without_dates(path: Path) -> bytes:
    """A result file's bytes, but SupSup's adapt_results.csv (and its per-evaluation parts) without the first
    column, the time each evaluation ran: what a rerun must reproduce."""
    if path.name != "adapt_results.csv" and path.parent.name != "adapt":
        return path.read_bytes()
    return b"\n".join(line.split(b",", 1)[1] for line in path.read_bytes().splitlines())


def flag(args: list[str], name: str) -> str:
    """The value after flag `name` in a recorded command line."""
    return args[args.index(name) + 1]
