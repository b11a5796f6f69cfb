"""Continual-learning metrics from an accuracy matrix, without torch.

R[i][j] is the test accuracy of task i after task j was learned (0-based here, i <= j; None above the
diagonal, where task i is not learned yet). T is the number of tasks and the last column is R[.][T-1].
A metric that needs more tasks than the matrix has (BWT and forgetting with one task) is None.
Below the methods, whose reports compute them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from unforget.utils.atomic import atomic_write

Matrix = list[list[float | None]]
MATRIX_CSV = "accuracy_matrix.csv"
"""the matrix as CSV (write_matrix_csv), beside every report's JSON"""


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _checked(matrix: Sequence[Sequence[float | None]]) -> list[list[float]]:
    """The matrix, checked square with every value on and right of the diagonal present, as floats (NaN
    for the blanks above the diagonal, which no metric reads)."""
    tasks = len(matrix)
    if not tasks or any(len(row) != tasks for row in matrix):
        raise ValueError(f"the accuracy matrix must be square and not empty, got {[len(row) for row in matrix]}")
    for i, row in enumerate(matrix):
        if any(row[j] is None for j in range(i, tasks)):
            raise ValueError(f"row {i} of the accuracy matrix lacks a value on or right of the diagonal")
    return [[math.nan if value is None else value for value in row] for row in matrix]


def average_accuracy(matrix: Sequence[Sequence[float | None]]) -> float:
    """ACC = 1/T sum_i R[i][T]: the mean accuracy of every task after the last one was learned."""
    known = _checked(matrix)
    tasks = len(known)
    return round(sum(known[i][tasks - 1] for i in range(tasks)) / tasks, 4)  # _mean of a list never empty


def backward_transfer(matrix: Sequence[Sequence[float | None]]) -> float | None:
    """BWT = 1/(T-1) sum_{i<T} (R[i][T] - R[i][i]) (Lopez-Paz & Ranzato 2017): how learning later tasks
    changed earlier ones; negative is forgetting, 0 for a method that never forgets."""
    known = _checked(matrix)
    tasks = len(known)
    return _mean([known[i][tasks - 1] - known[i][i] for i in range(tasks - 1)])


def forgetting(matrix: Sequence[Sequence[float | None]]) -> float | None:
    """F = 1/(T-1) sum_{i<T} max_{j in [i, T-1]} (R[i][j] - R[i][T]) (Chaudhry et al. 2018): the mean drop
    from each earlier task's best accuracy before the last task to its final accuracy."""
    known = _checked(matrix)
    tasks = len(known)
    return _mean([max(known[i][j] for j in range(i, tasks - 1)) - known[i][tasks - 1] for i in range(tasks - 1)])


def forward_transfer(matrix: Sequence[Sequence[float | None]], names: Sequence[str],
                     baselines: Mapping[str, float]) -> float | None:
    """FWT = 1/(T-1) sum_{i>1} (R[i][i] - b_i) against the baseline accuracy b_i of each task after the
    first. With a goal file of independently trained models (scripts/baseline.sh) this is the transfer
    relative to them: how much better a task is learned after the earlier ones than alone. Tasks whose
    baseline is missing or not finite ("force_growth") are left out; None when none is left."""
    known = _checked(matrix)
    gaps = [known[i][i] - baselines[name] for i, name in enumerate(names) if i > 0
            and math.isfinite(baselines.get(name, math.inf))]
    return _mean(gaps)


def metrics(matrix: Sequence[Sequence[float | None]], names: Sequence[str],
            baselines: Mapping[str, float] | None = None) -> dict[str, float | None]:
    """ACC, BWT, forgetting and (with baselines) FWT of the matrix, as summary.json keys."""
    result = {"average_accuracy": average_accuracy(matrix), "backward_transfer": backward_transfer(matrix),
              "forgetting": forgetting(matrix)}
    if baselines is not None:
        result["forward_transfer"] = forward_transfer(matrix, names, baselines)
    return result


def write_matrix_csv(path: Path, names: Sequence[str], matrix: Sequence[Sequence[float | None]]) -> None:
    """One row per task i, one column per "after task j"; blank above the diagonal."""
    rows: list[list[str | float]] = [["task", *(f"after {name}" for name in names)]]
    rows += [[name, *("" if value is None else value for value in row)] for name, row in zip(names, matrix,
                                                                                            strict=True)]
    atomic_write(Path(path), lambda file: csv.writer(file, lineterminator="\n").writerows(rows), binary=False)


