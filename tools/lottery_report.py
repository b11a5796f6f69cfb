"""Report of lottery runs: accuracy of the ticket and its controls against remaining weights.

Usage: python -m tools.lottery_report ROOT [--targets 0.5,0.8,0.9,0.95] [--title TEXT]
ROOT is one run (it holds level_0/) or a folder of runs (e.g. one per seed). Writes ROOT/report.md
and ROOT/accuracy.png and prints the table. The report is the method's (utils/methods/lottery/report.py);
this command parses the arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/lottery_report.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.lottery.report import ReportError, write_report

DEFAULT_TARGETS = "0.5,0.8,0.9,0.95"


def targets(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if any(not 0.0 <= value < 1.0 for value in values):
        raise ValueError("sparsities must be in [0, 1)")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.lottery_report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a lottery run folder, or a folder of runs")
    parser.add_argument("--targets", default=DEFAULT_TARGETS, help="comma-separated sparsities to pick levels at")
    parser.add_argument("--title", default=None, help="title of the table and the plot (default: ROOT's name)")
    args = parser.parse_args(argv)
    try:
        chosen = targets(args.targets)
    except ValueError as error:
        parser.error(f"--targets {args.targets!r}: {error}")
    try:
        text = write_report(args.root, chosen, args.title)
    except ReportError as error:
        parser.error(str(error))
    print(text, end="")
    print(f"plot: {args.root / 'accuracy.png'}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
