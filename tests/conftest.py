"""Shared fixtures: a warm digits cache, one thread per process, GPU tests skipped without CUDA.

The session computes on TEST_THREADS threads (default 1), and so does every process it starts: torch's
default of one thread per core oversubscribes a shared two-core machine. Tests marked `gpu` are skipped
where CUDA is absent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import THREADS  # noqa: E402

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
    from unforget.utils.data.registry import get_benchmark

    root = tmp_path_factory.mktemp("data")
    benchmark = get_benchmark("split_digits")
    for name in benchmark.task_names:
        benchmark.load_task(root, name)
    return root
