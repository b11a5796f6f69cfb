"""Print a benchmark's task names in learning order, one per line (no torch import: fast)."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/list_tasks.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser, end_quietly_on_closed_pipe
from unforget.utils.data.registry import BENCHMARKS, DataError, get_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help=f"a built-in benchmark ({', '.join(sorted(BENCHMARKS))}) or a benchmark "
                                          "spec file (*.json; see the README's \"Bring your own data\")")
    parser.add_argument("--arch", action="store_true", help="print the default architecture instead")
    args = parser.parse_args(argv)
    try:
        benchmark = get_benchmark(args.benchmark)
    except DataError as error:  # a driver passes this one line on and stops with exit 64
        parser.error(str(error))
    print((benchmark.arch or "") if args.arch else "\n".join(benchmark.task_names))
    return 0


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main())
