"""Continual-learning metrics: the formulas on a hand-made matrix, the report's matrix and plots on real runs."""

from __future__ import annotations

import pytest

from tools import metrics

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
