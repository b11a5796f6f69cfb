"""Plot of a SupSup NNs run's new-task checks (tools/plots.py `nns_checks`).

Usage: python -m tools.nns_report ROOT
ROOT is the run folder of scripts/supsup_nns_permuted_mnist.sh (it holds model/checks.csv and
model/meta.json). Writes ROOT/nns_checks.png and prints how each stream task's checks went.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from tools import plots
from tools.checkpoints import CheckpointFileError, read_json
from utils.cli import UsageParser
from utils.exit_codes import ExitCode

FIELDS = ("batch", "stream_task", "decision", "n_max_nu", "masks_allocated")


def read_checks(path: Path) -> list[dict]:
    """The checks of checks.csv, each with the fields the plot needs (a bad file is a CheckpointFileError)."""
    try:
        with path.open(newline="") as file:
            checks = list(csv.DictReader(file))
        for check in checks:
            int(check["batch"]), float(check["n_max_nu"]), int(check["masks_allocated"])
    except (OSError, KeyError, TypeError, ValueError, csv.Error) as error:
        raise CheckpointFileError(f"{path}: not an NNs checks file ({error})") from error
    if not checks:
        raise CheckpointFileError(f"{path}: no checks (the stream was shorter than one check interval)")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.nns_report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="an NNs run folder (holding model/checks.csv)")
    args = parser.parse_args(argv)
    model = args.root / "model"
    if not (model / "checks.csv").is_file() or not (model / "meta.json").is_file():
        parser.error(f"{args.root} is not a finished NNs run (no model/checks.csv and model/meta.json)")
    try:
        checks = read_checks(model / "checks.csv")
        epsilon = float(read_json(model / "meta.json", "settings")["settings"]["supsup_nns_epsilon"])
    except (CheckpointFileError, KeyError, TypeError, ValueError) as error:
        print(f"tools.nns_report: error: {error}", file=sys.stderr)
        return ExitCode.BAD_CHECKPOINT
    for task in dict.fromkeys(check["stream_task"] for check in checks):
        decisions = Counter(check["decision"] for check in checks if check["stream_task"] == task)
        print(task, " ".join(f"{decision}={count}" for decision, count in sorted(decisions.items())))
    print(f"plot: {plots.nns_checks(args.root, checks, epsilon)}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
