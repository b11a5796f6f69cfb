"""Shared fixtures: the repository, its interpreter, a warm digits cache and process helpers.

The session computes on TEST_THREADS threads (default 1), and so does every process it starts: torch's
default of one thread per core oversubscribes a shared two-core machine. Tests marked `gpu` are skipped
where CUDA is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
THREADS = os.environ.get("TEST_THREADS", "1")
torch.set_num_threads(int(THREADS))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root whose split_digits cache is filled once per test session."""
    from utils.data.registry import get_benchmark

    root = tmp_path_factory.mktemp("data")
    benchmark = get_benchmark("split_digits")
    for name in benchmark.task_names:
        benchmark.load_task(root, name)
    return root


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
