"""The one entry point: one stage (finetune, prune, retrain or inference) for one task.

`main_normal.py` is the script users and drivers run: it hands the stage to a driver's warm-start server
when there is one (utils/warm_start.py), else calls `main` here. A warm child runs this module by name.

It exits with a state code the bash drivers branch on: 0 go on, 2 expand the
width, 3 no accuracy goal, 5 no free weights, 6 stop pruning, 64 bad flags or
inputs, 65 unreadable checkpoint, 1 anything else (see utils/exit_codes.py). Under torchrun the
CPG family's training stages run data-parallel, one process per GPU (utils/distributed.py).
"""

from __future__ import annotations

import os
import sys
import time

from unforget.utils.cli import UsageError, UsageParser, one_line
from unforget.utils.data.registry import DataError
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods import METHODS
from unforget.utils.ranks import world_size
from unforget.utils.records import MissingGoal, RecordError
from unforget.utils.settings import StageSettings
from unforget.utils.warm_client import INTERRUPTED, START_ENV

PROCESS_START = time.time()
"""A stage's clock starts here when no earlier start is in START_ENV (`main` called from Python, not the script)."""


def chosen_method(argv: list[str]) -> str:
    """The --method value alone (default cpg), so the full parser can offer that method's flags only."""
    parser = UsageParser(prog="main_normal.py", add_help=False, allow_abbrev=False)
    parser.add_argument("--method", default="cpg", choices=sorted(METHODS))
    return parser.parse_known_args(argv)[0].method


def build_parser(method: str) -> UsageParser:
    """The common flags and those of `method`, each group titled by the settings class declaring it."""
    methods = "; ".join(f"{name}: {entry.about}" for name, entry in METHODS.items())
    parser = UsageParser(prog="main_normal.py", description=__doc__.splitlines()[0], allow_abbrev=False,
                         epilog=f"methods: {methods}. `--method NAME --help` lists a method's flags.")
    groups: dict[type, object] = {}

    def group_of(klass: type) -> object:
        if klass not in groups:
            title = "common" if klass is StageSettings else (klass.__doc__ or klass.__name__).splitlines()[0]
            groups[klass] = parser.add_argument_group(title)
        return groups[klass]

    METHODS[method].settings_class().add_flags(parser, group_of)
    return parser


def parse_settings(argv: list[str]) -> StageSettings:
    """Flags to the chosen method's validated settings; a flag of another method is a usage error."""
    method = chosen_method(argv)
    parser = build_parser(method)
    args, unknown = parser.parse_known_args(argv)
    for token in unknown:
        name = token.split("=", 1)[0]
        owners = [other for other, entry in METHODS.items() if name in entry.settings_class().flag_names()]
        if owners:
            parser.error(f"{name} is a flag of --method {', '.join(owners)}, not of --method {method}")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        settings = METHODS[method].settings_class().from_args(args).resolved()
        settings.validate()
    except (UsageError, DataError) as error:
        parser.error(str(error))
    if world_size() > 1 and not METHODS[method].data_parallel:
        parser.error(f"--method {method} runs in one process; start it without torchrun")
    return settings


def main(argv: list[str] | None = None) -> int:
    """Run one stage for the flags in `argv` (default: the command line) and return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    settings = parse_settings(argv)
    process_start = float(os.environ.get(START_ENV, PROCESS_START))
    from unforget.models import UnknownArchitecture
    from unforget.utils.atomic import WriteError
    from unforget.utils.checkpoint import CheckpointError

    try:
        return int(METHODS[settings.method].runner()(settings, process_start))
    except KeyboardInterrupt:
        print("main_normal.py: interrupted; rerun the same command (or its driver) to redo this stage",
              file=sys.stderr)
        return INTERRUPTED
    except MissingGoal as error:
        print(f"main_normal.py: {one_line(str(error))}. Add the task's accuracy goal to a JSON file "
              f"(task name -> accuracy, e.g. from scripts/baseline.sh <benchmark>) and pass it as --baseline_acc_file.",
              file=sys.stderr)
        return ExitCode.NO_GOAL
    except (UsageError, RecordError, DataError, UnknownArchitecture) as error:
        print(f"main_normal.py: error: {one_line(str(error))}", file=sys.stderr)
        return ExitCode.USAGE
    except (CheckpointError, WriteError) as error:
        print(f"main_normal.py: error: {one_line(str(error))}", file=sys.stderr)
        return ExitCode.BAD_CHECKPOINT

