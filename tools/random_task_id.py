"""Print a random earlier task id in [1, current-1] (seeded), for finetune baselines.

The reference returned it as the exit code, which collides with the state codes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

if not __package__:  # run as `python tools/random_task_id.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser, end_quietly_on_closed_pipe


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curr_task_id", type=int, required=True, help="1-based id of the task about to start")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.curr_task_id < 2:
        parser.error("--curr_task_id must be at least 2 (task 1 has no earlier task)")
    print(random.Random(args.seed * 1000 + args.curr_task_id).randint(1, args.curr_task_id - 1))
    return 0


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main())
