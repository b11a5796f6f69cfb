"""Continual-learning metrics: the formulas on a hand-made matrix, the report's matrix and plots on real runs."""

from __future__ import annotations

import json

import pytest

from tests.helpers.files import png_is_drawn
from unforget.utils import metrics

# R[i][j]: task i after task j. Task 0 rises then falls, task 1 only falls.
HAND = [[0.9, 0.95, 0.7],
        [None, 0.8, 0.6],
        [None, None, 0.5]]
NAMES = ["a", "b", "c"]


def test_formulas_on_a_hand_made_matrix():
    assert metrics.average_accuracy(HAND) == pytest.approx((0.7 + 0.6 + 0.5) / 3, abs=1e-4)
    assert metrics.backward_transfer(HAND) == pytest.approx(((0.7 - 0.9) + (0.6 - 0.8)) / 2, abs=1e-4)
    assert metrics.forgetting(HAND) == pytest.approx(((0.95 - 0.7) + (0.8 - 0.6)) / 2, abs=1e-4)
    baselines = {"a": 0.0, "b": 0.7, "c": 0.6}
    assert metrics.forward_transfer(HAND, NAMES, baselines) == pytest.approx(((0.8 - 0.7) + (0.5 - 0.6)) / 2,
                                                                              abs=1e-4)
    assert metrics.forward_transfer(HAND, NAMES, {"b": 0.7, "c": float("inf")}) == pytest.approx(0.1, abs=1e-4)
    assert set(metrics.metrics(HAND, NAMES)) == {"average_accuracy", "backward_transfer", "forgetting"}
    assert metrics.metrics(HAND, NAMES, baselines)["forward_transfer"] == pytest.approx(0.0, abs=1e-4)


def test_one_task_has_no_backward_transfer_and_an_unforgetting_run_none():
    assert metrics.metrics([[0.9]], ["a"]) == {"average_accuracy": 0.9, "backward_transfer": None,
                                               "forgetting": None}
    constant = [[0.9, 0.9], [None, 0.8]]
    assert metrics.backward_transfer(constant) == 0.0 and metrics.forgetting(constant) == 0.0


@pytest.mark.parametrize("matrix", [[], [[0.9, 0.8]], [[0.9, None], [None, 0.8]]])
def test_malformed_matrices_are_refused(matrix):
    with pytest.raises(ValueError):
        metrics.average_accuracy(matrix)


def test_matrix_csv_is_blank_above_the_diagonal(tmp_path):
    metrics.write_matrix_csv(tmp_path / "m.csv", NAMES, HAND)
    assert (tmp_path / "m.csv").read_text().splitlines() == [
        "task,after a,after b,after c", "a,0.9,0.95,0.7", "b,,0.8,0.6", "c,,,0.5"]


@pytest.mark.slow
def test_cpg_run_matrix_never_forgets_and_its_plots_are_drawn(data_root, tmp_path):
    from tests.helpers import QUICK, run_driver

    result = run_driver("cpg.sh", "split_digits", str(data_root), "matrix", "1.5", **QUICK, NUM_TASKS="3",
                        CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "ck/CPG/split_digits/matrix_seed1/digits_convnet"
    summary = json.loads((root / "summary.json").read_text())
    matrix, rows = summary["accuracy_matrix"], summary["tasks"]
    assert list(summary)[:9] == ["benchmark", "tasks", "average_accuracy_after_learning", "average_accuracy_final",
                                 "final_width", "shared_weights", "size_vs_unexpanded", "free_fraction",
                                 "task_names"]
    for i, row in enumerate(matrix):
        learned = json.loads((root / rows[i]["task"] / "gradual_prune/meta.json").read_text())["test_accuracy"]
        assert row[i] == learned  # the test accuracy measured beside the validation accuracy it was chosen on
        assert row[:i] == [None] * i
        assert row[i:] == [rows[i]["accuracy_after_learning"]] * (len(row) - i), row
    assert summary["metrics"]["backward_transfer"] == 0.0 and summary["metrics"]["forgetting"] == 0.0
    assert summary["metrics"]["average_accuracy"] == summary["average_accuracy_final"]
    capacity = summary["capacity"]
    assert [row["task"] for row in capacity["tasks"]] == summary["task_names"]
    assert capacity["tasks"][0]["picked_weights"] == 0 and capacity["model_bytes"] > capacity["mask_bytes"] > 0
    assert (root / "accuracy_matrix.csv").read_text().splitlines()[2].startswith("digits_23,,")
    for name in ("accuracy_matrix.png", "pruning_curves.png", "capacity.png"):
        assert png_is_drawn(root / name), name
