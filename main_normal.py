"""The one entry point: one stage (finetune, prune, retrain or inference) for one task.

It exits with a state code the bash drivers branch on: 0 go on, 2 expand the
width, 3 no accuracy goal, 5 no free weights, 6 stop pruning, 64 bad flags or
inputs, 65 unreadable checkpoint, 1 anything else (see utils/exit_codes.py). Under torchrun the
CPG family's training stages run data-parallel, one process per GPU (utils/distributed.py).

This script only starts the stage: under a driver's warm start it hands it to the server, else it runs
utils/entry.py's `main` (the flags, the methods and the exit codes live there) in this process.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()  # before the other imports: the benchmark's "start to first step" counts from here

import os  # noqa: E402
import sys  # noqa: E402

from unforget.utils.warm_client import START_ENV, run_remote  # noqa: E402

if __name__ == "__main__":
    os.environ[START_ENV] = repr(PROCESS_START)  # a stage, here or in a warm child, measures from this start

if __name__ == "__main__" and os.environ.get("CPG_STAGE_SERVER"):
    # a driver's warm start: hand the stage to the server before importing the stage machinery (a driver
    # pays that import once per stage); without a reachable server, or as a torchrun rank, run it here
    _code = run_remote(sys.argv[1:])
    if _code is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_code)

from unforget.utils.entry import main, parse_settings  # noqa: E402
from unforget.utils.ranks import report_state  # noqa: E402

__all__ = ["main", "parse_settings"]  # for callers that import the script (tests, benchmarks)

if __name__ == "__main__":
    code = report_state(main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # every file is written and synced; skip the interpreter's ~1 s teardown of torch
