"""Table of Expand-and-Cluster runs, one row per report.json (e.g. one per seed), as Markdown: the
teacher's test accuracy (trained teachers); after the final fine-tune, per hidden layer, the
recovered / teacher neurons, the excess neurons, the rebuilt sizes and the worst 1-|cos|; the test
loss against the teacher; the worst final student loss of each layer's students; the seconds spent.

Usage: python -m tools.extract REPORT.json [REPORT.json ...]
The table is the method's (utils/methods/extract/report.py); this command reads the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as `python tools/extract.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.extract.report import ReportFileError, seeds_table


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.extract", description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    try:
        table = seeds_table(args.reports)
    except ReportFileError as error:
        print(f"tools.extract: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    print(table)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
