"""scripts/gpu_check.sh's refusals, on the CPU: no CUDA device or bad input is one line on stderr and exit 64,
before any step runs or any report is written (its steps are for a machine with a GPU)."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import REPO, environment


def _check(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts/gpu_check.sh"), *args], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(CUDA_VISIBLE_DEVICES="", TMPDIR=str(tmp_path), **env),
                          timeout=120)


@pytest.mark.parametrize("args, env, says", [
    ((), {}, "no CUDA device"),
    (("a.md", "b.md"), {}, "usage"),
    (("a.md",), {"STEP_SECONDS": "0"}, "STEP_SECONDS"),
    (("a.md",), {"STEP_SECONDS": "$(touch x)"}, "STEP_SECONDS"),
])
def test_refuses_in_one_line_with_64_and_writes_nothing(tmp_path, args, env, says):
    result = _check(tmp_path, *args, **env)
    assert result.returncode == 64, result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no report, no scratch folder, nothing the arguments named
