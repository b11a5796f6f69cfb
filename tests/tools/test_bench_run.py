"""tools.bench_run on the tiniest settings: it runs a driver and the bare loop and prints every field (the figures
themselves are measured by hand, docs/results/measured/performance.md); bad settings are one line and 64."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, environment


def _bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.bench_run", "--work", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, cwd=REPO, env=environment(), timeout=600)


@pytest.mark.slow  # two driver runs: repeats take medians of figures whose labels must not change between runs
@pytest.mark.parametrize("pairing", ["paired", "sequential"])
def test_prints_the_ratio_and_the_overhead_per_stage_kind(tmp_path, pairing):
    result = _bench(tmp_path, "--pairing", pairing, "--method", "cpg", "--repeats", "2", "--set", "NUM_TASKS=2",
                    "--set", "MAX_WIDTH=1.0",
                    "--set", "FINETUNE_EPOCHS=1", "--set", "PRUNE_EPOCHS=1", "--set", "RETRAIN_EPOCHS=1",
                    "--set", "SPARSITY_STEPS=0.5", "--set", "TRAIN_ACCURACY_GATE=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f", {pairing}, " in result.stdout.splitlines()[0]
    line = re.search(r"^cpg: driver_cpu=(\S+) bare_cpu=(\S+) ratio=(\S+) stages=(\d+) ratios=(\S+),(\S+) "
                     r"wall_ratio=\S+ bare_loop_alone_cpu=\S+$", result.stdout, re.MULTILINE)
    assert line, result.stdout
    driver, bare, ratio, stages = float(line[1]), float(line[2]), float(line[3]), int(line[4])
    ratios = sorted((float(line[5]), float(line[6])))
    assert driver > 0 and bare > 0 and ratio == pytest.approx(sum(ratios) / 2, abs=0.002)  # the median of two
    assert ratios[0] - 0.005 <= driver / bare <= ratios[1] + 0.005  # two medians' quotient lies between the ratios
    assert stages == 5  # finetune and prune of each task, and the second task's retrain
    for kind in ("finetune: set-up", "prune: set-up", "retrain: after the epochs", "choose_pruning_ratio x2 CPU",
                 "choose_retrain x1 CPU", "choose_retrain seconds a call", "driver outside its stages", "epochs: "):
        assert kind in result.stdout, (kind, result.stdout)


def test_a_setting_that_is_not_name_equals_value_is_refused(tmp_path):
    result = _bench(tmp_path, "--set", "num_tasks")
    assert result.returncode == 64 and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.slow  # a pilot driver run and two pairs of bare loops
def test_calibration_prints_the_ratio_of_two_bare_loops_side_by_side(tmp_path):
    result = _bench(tmp_path, "--calibrate", "--method", "supsup_gg", "--repeats", "2", "--set", "NUM_TASKS=2",
                    "--set", "EPOCHS=1")
    assert result.returncode == 0, result.stderr[-3000:]
    line = re.search(r"^supsup_gg a/a: ratio=(\S+) ratios=(\S+),(\S+)$", result.stdout, re.MULTILINE)
    assert line, result.stdout
    assert float(line[1]) == pytest.approx((float(line[2]) + float(line[3])) / 2, abs=0.002)
    assert 0.5 < float(line[1]) < 2.0  # the same work twice: a ratio far from 1 is a measuring fault


def test_calibration_of_the_sequential_bench_is_refused(tmp_path):
    result = _bench(tmp_path, "--calibrate", "--pairing", "sequential")
    assert result.returncode == 64 and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "work").exists()


def test_a_paired_repeat_must_replay_the_first_runs_work_wherever_it_ran():
    """The bare loop beside a repeat replays the first run: runs under other roots compare equal, and a run
    with other epochs or other stages does not."""
    from unforget.tools.bench_run import RunRecord, StageRun, work_done

    def run(ckpt: str, epochs: int, sparsity: str) -> RunRecord:
        argv = ["--mode", "prune", "--target_sparsity", sparsity, "--save_folder", f"{ckpt}/CPG/t1/gradual_prune"]
        return RunRecord(tasks=["t1"], stages={"t1": [StageRun("prune", argv, epochs=epochs)]})

    first = work_done(run("/a/pilot", 4, "0.5"), Path("/a/pilot"))
    assert work_done(run("/a/ckpt", 4, "0.5"), Path("/a/ckpt")) == first
    assert work_done(run("/a/ckpt", 3, "0.5"), Path("/a/ckpt")) != first
    assert work_done(run("/a/ckpt", 4, "0.6"), Path("/a/ckpt")) != first
