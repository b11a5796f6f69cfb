"""The real bash driver end to end on split_digits with short stages."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import QUICK, REPO, environment, run_driver

pytestmark = pytest.mark.slow

def _decisions(log: Path, stage: str) -> list[dict[str, str]]:
    """The key=value fields of a stage's decision lines in train.log."""
    rows = []
    for line in log.read_text().splitlines():
        if f"stage={stage} " in line and " exit=" in line:
            rows.append(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)))
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _assert_stage_cpu_reaches_the_caller(root: Path, total: float) -> None:
    """Every finished stage records its CPU seconds, and what the caller is told the run cost (the kernel's
    count over the driver's whole tree, as /usr/bin/time reports it) holds them all: stages run in children
    of the warm-start server, whose CPU is lost to every caller unless the server waits for them."""
    finished = list(root.rglob(".stages/*.seconds"))
    cpus = [float(path.with_suffix(".cpu").read_text()) for path in finished]
    assert len(finished) > 10 and all(cpu > 0 for cpu in cpus)
    assert sum(cpus) <= total, (sum(cpus), total)


def test_unreachable_goals_grow_to_the_cap_and_reach_every_state(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps({"digits_01": 0.5, "digits_23": "force_growth", "digits_45": "force_growth"}))
    before = _children_cpu()
    result = run_driver("cpg.sh", "split_digits", str(data_root), "unreachable", "1.5", **QUICK,
                        NUM_TASKS="3", TOTAL_TASKS="2", GOALS=str(goals), CKPT_ROOT=str(tmp_path / "ck"))
    total = _children_cpu() - before
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "ck/CPG/split_digits/unreachable_seed1/digits_convnet"
    _assert_stage_cpu_reaches_the_caller(root, total)
    finetunes = {task: _decisions(root / task / "train.log", "finetune") for task in ("digits_01", "digits_23",
                                                                                       "digits_45")}
    widths = [float(row["width"]) for rows in finetunes.values() for row in rows]
    assert widths == sorted(widths) and set(widths) == {1.0, 1.5}, widths
    expanded = [row for rows in finetunes.values() for row in rows if row["exit"] == "2"]
    assert expanded and all(float(row["width"]) == 1.0 for row in expanded)
    assert [row["exit"] for row in finetunes["digits_23"]][-1] == "0"
    assert [row["exit"] for row in finetunes["digits_45"]] == ["5"]  # everything is owned: no space
    prunes_23 = _decisions(root / "digits_23/train.log", "prune")
    assert [row["exit"] for row in prunes_23] == ["6"]  # at the cap below the goal, last of TOTAL_TASKS
    assert not _decisions(root / "digits_45/train.log", "prune")
    for task in finetunes:  # one checkpoint a task: the ones that led to the chosen model are dropped
        assert not (root / task / "scratch/checkpoint.pth").exists()
        assert (root / task / "scratch/meta.json").is_file()
        assert (root / task / "gradual_prune/checkpoint.pth").is_file()
        assert not [p for p in (root / task / "gradual_prune").iterdir() if p.is_dir()]
    assert not (root / "digits_23/retrain/checkpoint.pth").exists()
    assert (root / "digits_23/retrain/record.txt").is_file()
    assert not (root / "digits_45/retrain").exists()
    summary = json.loads((root / "summary.json").read_text())
    for row in summary["tasks"]:
        assert row["accuracy_final"] == row["accuracy_after_learning"], row
    assert summary["final_width"] == 1.5


def _summary(root: Path) -> dict:
    return json.loads((root / "summary.json").read_text())


def test_killed_during_pruning_resumes_to_the_same_summary(data_root, tmp_path):
    common = {**QUICK, "NUM_TASKS": "2", "CKPT_ROOT": str(tmp_path / "ck")}
    reference = run_driver("cpg.sh", "split_digits", str(data_root), "straight", "1.5", **common)
    assert reference.returncode == 0, reference.stderr[-3000:]

    root = tmp_path / "ck/CPG/split_digits/killed_seed1/digits_convnet"
    log = root / "digits_01/train.log"
    driver = subprocess.Popen(["bash", str(REPO / "scripts/cpg.sh"), "split_digits", str(data_root), "killed", "1.5"],
                              env=environment(**common), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    marker = root / "digits_01/.stages/prune_0.2"
    while time.time() < deadline and driver.poll() is None:
        if marker.exists() and "stage=prune task=digits_01 epoch=1/" in log.read_text().split("exit=0")[-1]:
            break
        time.sleep(0.01)
    assert driver.poll() is None, "the driver finished before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (root / "digits_01/.stages/prune_0.3").exists()

    resumed = run_driver("cpg.sh", "split_digits", str(data_root), "killed", "1.5", **common)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "prune_0.2: done before" in resumed.stdout
    assert _summary(root) == _summary(tmp_path / "ck/CPG/split_digits/straight_seed1/digits_convnet")
