"""The reports of SupSup's stream scenarios (`python -m tools.stream_report`): NNs' new-task checks and
HopSupSup's mask recoveries, each printed per task and plotted (utils/plots.py)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from unforget.utils import plots
from unforget.utils.run_files import CheckpointFileError, read_json


def read_checks(path: Path) -> list[dict]:
    """The checks of checks.csv, each with the fields the plot needs (a bad file is a CheckpointFileError)."""
    try:
        with path.open(newline="") as file:
            checks = list(csv.DictReader(file))
        for check in checks:
            int(check["batch"]), int(check["masks_allocated"]), check["decision"]
            if not math.isfinite(float(check["n_max_nu"])):
                raise ValueError(f"n_max_nu {check['n_max_nu']} is not a finite number")
    except (OSError, KeyError, TypeError, ValueError, csv.Error) as error:
        raise CheckpointFileError(f"{path}: not an NNs checks file ({error})") from error
    if not checks:
        raise CheckpointFileError(f"{path}: no checks (the stream was shorter than one check interval)")
    return checks


def nns(root: Path) -> Path:
    """Each stream task's decisions counted, and the checks against the run's epsilon plotted."""
    checks = read_checks(root / "model/checks.csv")
    try:
        epsilon = float(read_json(root / "model/meta.json", "settings")["settings"]["supsup_nns_epsilon"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointFileError(f"{root / 'model/meta.json'}: no NNs epsilon ({error})") from error
    for task in dict.fromkeys(check["stream_task"] for check in checks):
        decisions = Counter(check["decision"] for check in checks if check["stream_task"] == task)
        print(task, " ".join(f"{decision}={count}" for decision, count in sorted(decisions.items())))
    return plots.nns_checks(root, checks, epsilon)


def hopfield(root: Path) -> Path:
    """Each task's recovery length and final overlap, and the recovery trace plotted."""
    summary = read_json(root / "summary.json", "recovery_trace", "hidden")
    try:
        for task, steps in summary["recovery_trace"].items():
            last = steps[-1]["own_overlap"]
            print(task, f"steps={len(steps)} final overlap with its own stored mask, per layer: {last}")
        return plots.hopfield_recovery(root, summary)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        raise CheckpointFileError(f"{root / 'summary.json'}: not a HopSupSup recovery trace ({error})") from error


def report_of(root: Path) -> Callable[[Path], Path] | None:
    """The report of the run in `root`, by the files it holds (None: no finished NNs or HopSupSup run)."""
    if (root / "model/checks.csv").is_file():
        return nns
    if (root / "summary.json").is_file() and (root / "model/meta.json").is_file():
        return hopfield
    return None
