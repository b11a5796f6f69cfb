"""Plots of SupSup's stream scenarios: NNs' new-task checks and HopSupSup's mask recoveries.

Usage: python -m tools.stream_report ROOT
ROOT is a run folder of scripts/supsup_nns_permuted_mnist.sh (it holds model/checks.csv and
model/meta.json) or of scripts/supsup_hop_split_mnist.sh (its summary.json holds the recovery trace).
Writes ROOT/nns_checks.png or ROOT/hopfield_recovery.png and prints per task how its checks or its recovery
went. The reports are SupSup's (utils/methods/supsup/stream_report.py); this command parses the arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/stream_report.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.supsup.stream_report import report_of
from unforget.utils.run_files import CheckpointFileError


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.stream_report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="an NNs or a HopSupSup run folder")
    args = parser.parse_args(argv)
    report = report_of(args.root)
    if report is None:
        parser.error(f"{args.root} is not a finished NNs or HopSupSup run (no model/checks.csv or summary.json)")
    try:
        print(f"plot: {report(args.root)}")
    except CheckpointFileError as error:
        print(f"tools.stream_report: error: {error}", file=sys.stderr)
        return ExitCode.BAD_CHECKPOINT
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
