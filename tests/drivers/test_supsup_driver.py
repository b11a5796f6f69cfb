"""scripts/supsup_gg.sh end to end on a tiny generated CIFAR-100 (three tasks, one epoch, CPU)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers import run_driver, without_dates
from tests.helpers.cifar import write_cifar100_pickle
from unforget.utils.data.supsup_names import RAND_SPLIT_CIFAR100_TASKS

pytestmark = pytest.mark.slow


def test_gg_driver_trains_three_tasks_and_writes_results(tmp_path):
    write_cifar100_pickle(tmp_path / "data")
    env = {"NUM_TASKS": "3", "EPOCHS": "1", "BATCH_SIZE": "32", "DATA_ROOT": str(tmp_path / "data"),
           "CKPT_ROOT": str(tmp_path / "ck")}
    result = run_driver("supsup_gg.sh", "0", **env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    root = tmp_path / "ck/SupSup/rand_split_cifar100/gg_er32_seed0/gem_resnet18"
    with (root / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["task"] for row in rows] == [*RAND_SPLIT_CIFAR100_TASKS[:3], "average"]
    for row in rows[:3]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["num_tasks_learned"] == 3 and 0.0 <= summary["average_accuracy_final"] <= 1.0


def test_gg_driver_rejects_a_bad_gpu_list(tmp_path):
    result = run_driver("supsup_gg.sh", "zero", DATA_ROOT=str(tmp_path))
    assert result.returncode == 64 and "gpu" in result.stderr


GNU = {"BENCHMARK": "permuted_digits", "NUM_TASKS": "3", "EPOCHS": "1", "EVAL_AT": "2", "OUTPUT_SIZE": "20"}


def _gnu(tmp_path, data_root):
    result = run_driver("supsup_gnu_permuted_mnist.sh", "0", DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path),
                        **GNU)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {path.name: without_dates(path) for path in tmp_path.rglob("*") if path.suffix in (".csv", ".json")
            and path.parent.name != "model" and path.name != "meta.json"}


@pytest.mark.parametrize("meta_written", [True, False])
def test_gnu_killed_after_a_save_or_an_evaluation_resumes_to_the_same_results(tmp_path, data_root, meta_written):
    """The states a kill leaves after a task's checkpoint (and its meta.json, or not yet) or an evaluation's
    rows were written and before the stage's marker: the rerun redoes nothing twice, ends with the same files."""
    uninterrupted = _gnu(tmp_path / "a", data_root)
    assert {"summary.json", "results.csv", "adapt_results.csv"} <= set(uninterrupted)
    for marker in ("task_3", "adapt_2"):
        for path in (tmp_path / "a").rglob(f".stages/{marker}"):
            path.unlink()
    if not meta_written:
        meta_path = next((tmp_path / "a").rglob("model/meta.json"))
        meta = json.loads(meta_path.read_text())
        del meta["accuracy_after_learning"]["pdigits_02"]
        meta_path.write_text(json.dumps(meta))
    assert _gnu(tmp_path / "a", data_root) == uninterrupted
