"""The JSON files drivers and users read: record.txt (sparsity -> accuracy) and accuracy goals.

Both are validated on read; anything malformed raises `RecordError`, which the
entry point turns into one line and exit 64. No torch import here: the tools
that choose checkpoints use this module and must start fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from unforget.utils.atomic import atomic_json_dump


class RecordError(Exception):
    """A record or goal file that exists but cannot be trusted."""


class MissingGoal(Exception):
    """No accuracy goal for a task (exit 3)."""


def sparsity_key(sparsity: float | str) -> str:
    """Canonical short string of a sparsity: 0 -> "0.0", 0.1 -> "0.1", 0.95 -> "0.95"."""
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise RecordError(f"sparsity {sparsity!r} is outside [0, 1)")
    return repr(round(value, 4))


FORCE_GROWTH = "force_growth"
"""A goal no accuracy meets: the task grows to the width cap (what a goal above 1 used to mean)."""

STOP_NOTE = "stopped.json"
"""Written into a prune stage's save folder when it stops without saving (exit 6): which sparsity, the
`kind` of stop ("train_accuracy_gate" or "last_task"), its `cause` in words and the numbers behind it. The
chooser copies it into chosen.json ("pruning_stopped"), where the run report finds why a task kept its
weights."""


def _read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except IsADirectoryError as error:
        raise RecordError(f"{what} {path} is a folder, not a file") from error
    except OSError as error:
        raise RecordError(f"cannot read {what} {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise RecordError(f"{what} {path} is not valid JSON ({error.msg} at line {error.lineno})") from error
    except UnicodeDecodeError as error:
        raise RecordError(f"{what} {path} is not text") from error
    except ValueError as error:  # an integer of thousands of digits, which int() refuses
        raise RecordError(f"{what} {path} holds a number too long to be a sparsity or an accuracy") from error
    except RecursionError as error:
        raise RecordError(f"{what} {path} is nested too deep to be one") from error
    if not isinstance(data, dict):
        raise RecordError(f"{what} {path} must hold a JSON object")
    return data


def _number(value, where: str, upper: float) -> float:
    if isinstance(value, bool):
        raise RecordError(f"{where}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise RecordError(f"{where}: {value!r} is not a number") from error
    if not 0.0 <= number <= upper or math.isnan(number):
        raise RecordError(f"{where}: {number} is outside [0, {upper}]")
    return number


def read_record(path: Path) -> dict[str, float]:
    """record.txt as {canonical sparsity: accuracy}; an absent file is an empty record."""
    path = Path(path)
    if not path.exists():
        return {}
    data = _read_json_object(path, "record file")
    record = {}
    for key, value in data.items():
        try:
            canonical = sparsity_key(key)
        except (ValueError, RecordError) as error:
            raise RecordError(f"record file {path}: key {key!r} is not a sparsity in [0, 1)") from error
        record[canonical] = _number(value, f"record file {path}, key {key!r}", 1.0)
    return record


def write_record_entry(path: Path, sparsity: float, accuracy: float) -> dict[str, float]:
    """Set record[sparsity] = accuracy (4 decimals), keys sorted by sparsity, written atomically."""
    record = read_record(path)
    record[sparsity_key(sparsity)] = round(float(accuracy), 4)
    ordered = dict(sorted(record.items(), key=lambda item: float(item[0])))
    atomic_json_dump(ordered, path)
    return ordered


def goal_value(value, where: str) -> float:
    """One accuracy goal (a fraction, or "force_growth" as infinity), wherever goals are written: goal
    files and benchmark specs."""
    if value == FORCE_GROWTH:
        return math.inf
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            if 1.0 < float(value) <= 100.0:
                raise RecordError(f"{where}: {value!r} is above 1: goals are fractions (0.975 for 97.5%), not "
                                  f"percentages; write \"{FORCE_GROWTH}\" for a goal never met")
        except ValueError:
            pass
    return _number(value, where, 1.0)


def read_goals(path: Path) -> dict[str, float]:
    """The accuracy-goal file: task name -> goal, a fraction in [0, 1] (number or numeric string), or
    "force_growth" for a goal no accuracy meets."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"accuracy-goal file {path} does not exist (make one with scripts/baseline.sh, or fix "
                          "the path)")
    data = _read_json_object(path, "accuracy-goal file")
    return {str(name): goal_value(goal, f"accuracy-goal file {path}, task {name!r}") for name, goal in data.items()}


def goal_for(goals: dict[str, float], task: str, source: str) -> float:
    if task not in goals:
        raise MissingGoal(f"no accuracy goal for task {task!r} in {source}")
    return goals[task]


@contextlib.contextmanager
def _locked_folder(folder: Path) -> Iterator[None]:
    """An exclusive lock (flock) on `folder` while its file is read, changed and replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def write_goal_entry(path: Path, task: str, accuracy: float) -> None:
    """Add or replace one task's accuracy in an accuracy-goal file (baselines write these). Locked, as
    baselines spread over GPUs finish at the same time and one's entry must not replace another's."""
    path = Path(path)
    with _locked_folder(path.parent):
        goals = read_goals(path) if path.exists() else {}
        goals[task] = round(float(accuracy), 4)
        atomic_json_dump(goals, path)
