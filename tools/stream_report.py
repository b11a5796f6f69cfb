"""Plots of SupSup's stream scenarios: NNs' new-task checks and HopSupSup's mask recoveries.

Usage: python -m tools.stream_report ROOT
ROOT is a run folder of scripts/supsup_nns_permuted_mnist.sh (it holds model/checks.csv and
model/meta.json) or of scripts/supsup_hop_split_mnist.sh (its summary.json holds the recovery trace).
Writes ROOT/nns_checks.png or ROOT/hopfield_recovery.png (tools/plots.py) and prints per task how its
checks or its recovery went.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from pathlib import Path

if not __package__:  # run as `python tools/stream_report.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import plots
from tools.checkpoints import CheckpointFileError, read_json
from utils.cli import UsageParser
from utils.exit_codes import ExitCode


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
    summary = read_json(root / "summary.json", "recovery_trace", "hidden")
    try:
        for task, steps in summary["recovery_trace"].items():
            last = steps[-1]["own_overlap"]
            print(task, f"steps={len(steps)} final overlap with its own stored mask, per layer: {last}")
        return plots.hopfield_recovery(root, summary)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        raise CheckpointFileError(f"{root / 'summary.json'}: not a HopSupSup recovery trace ({error})") from error


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.stream_report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="an NNs or a HopSupSup run folder")
    args = parser.parse_args(argv)
    if (args.root / "model/checks.csv").is_file():
        report = nns
    elif (args.root / "summary.json").is_file() and (args.root / "model/meta.json").is_file():
        report = hopfield
    else:
        parser.error(f"{args.root} is not a finished NNs or HopSupSup run (no model/checks.csv or summary.json)")
    try:
        print(f"plot: {report(args.root)}")
    except CheckpointFileError as error:
        print(f"tools.stream_report: error: {error}", file=sys.stderr)
        return ExitCode.BAD_CHECKPOINT
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
