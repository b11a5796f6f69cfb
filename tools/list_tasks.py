"""Print a benchmark's task names in learning order, one per line (no torch import: fast)."""

from __future__ import annotations

import sys

from utils.cli import UsageParser
from utils.data.registry import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--arch", action="store_true", help="print the default architecture instead")
    args = parser.parse_args(argv)
    benchmark = BENCHMARKS[args.benchmark]
    print((benchmark.arch or "") if args.arch else "\n".join(benchmark.task_names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
