"""docs/examples/python_api.py runs end to end from another folder, with the library found the way an editable
install finds it (PYTHONPATH at the checkout), and prints task 1's test accuracy recomputed through the API equal
to the run's own record; given the run folder, it reads the same run without training again."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import QUICK, REPO, environment

pytestmark = pytest.mark.slow  # a two-task CPG run through its driver
EXAMPLE = REPO / "docs" / "examples" / "python_api.py"
LINE = re.compile(r"task 1 test accuracy: recomputed (\d\.\d{4}), recorded (\d\.\d{4})")


def accuracies(output: str) -> tuple[str, str]:
    found = LINE.findall(output)
    assert len(found) == 1, output[-2000:]
    return found[0]


def test_the_example_recomputes_the_runs_accuracy_from_another_folder(tmp_path):
    (tmp_path / "data").mkdir()
    env = environment(**QUICK, NUM_TASKS="2", SPARSITY_STEPS="0.5 0.9", CKPT_ROOT=str(tmp_path / "runs"),
                      DATA_ROOT=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    recomputed, recorded = accuracies(done.stdout)
    assert recomputed == recorded
    assert "digits_01: classes 0, 1, images (1, 8, 8), train 240 (validation 48), test 120" in done.stdout
    root = next((tmp_path / "runs").rglob("run.json")).parent
    again = subprocess.run([sys.executable, str(EXAMPLE), str(root)], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert accuracies(again.stdout) == (recomputed, recorded)
