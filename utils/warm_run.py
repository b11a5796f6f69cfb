"""Run a tool in the driver's warm-start server: `python -m utils.warm_run tools.report ARG...`.

A tool that evaluates networks (tools.report, tools.capacity) spends more CPU importing torch than on its
work; handed to the server (utils/warm_start.py) it starts warm like a stage. Without a server it runs here.
"""

from __future__ import annotations

import importlib
import os
import sys

from unforget.utils.cli import end_quietly_on_closed_pipe
from unforget.utils.warm_client import CPU_VAR, run_remote


def main(argv: list[str]) -> int:
    """Run `argv[0]`'s main(argv[1:]) warm where a server is reachable, else in this process."""
    module, args = argv[0], argv[1:]
    os.environ.pop(CPU_VAR, None)  # a tool is not a stage: no stage's CPU record is its
    code = run_remote(args, module)
    if code is None:
        tool = importlib.import_module(module)
        if tool.__file__ is None:
            raise TypeError(f"{module} is not a module file to run")
        sys.argv = [tool.__file__, *args]  # usage lines name the tool, not this runner
        code = tool.main(args)
    return code


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main(sys.argv[1:]))
