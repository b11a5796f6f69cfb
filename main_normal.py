"""The one entry point: one stage (finetune, prune, retrain or inference) for one task.

It exits with a state code the bash drivers branch on: 0 go on, 2 expand the
width, 3 no accuracy goal, 5 no free weights, 6 stop pruning, 64 bad flags or
inputs, 65 unreadable checkpoint, 1 anything else (see utils/exit_codes.py).
"""

from __future__ import annotations

import time

PROCESS_START = time.time()  # before the other imports: the benchmark's "start to first step" counts from here
START_ENV = "CPG_PROCESS_START"

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from utils.cli import UsageError, UsageParser  # noqa: E402
from utils.data.registry import BENCHMARKS, DataError, get_benchmark  # noqa: E402
from utils.exit_codes import ExitCode  # noqa: E402
from utils.methods import METHODS, flag_adders, run_method  # noqa: E402
from utils.records import MissingGoal, RecordError  # noqa: E402
from utils.speed import EXACT_PATHS, Speed, add_flags  # noqa: E402

MODES = ("finetune", "prune", "retrain", "inference")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="main_normal.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--mode", required=True, choices=MODES, help="stage to run")
    add("--method", default="cpg", choices=sorted(METHODS),
        help="cpg: pick, compact, grow; packnet: ownership without picking; baseline: one plain model per task; "
             "the other methods are described in the README")
    add("--benchmark", default="split_digits", choices=sorted(BENCHMARKS), help="task sequence")
    add("--arch", default=None, help="architecture (default: the benchmark's)")
    add("--dataset", required=True, help="task name within the benchmark")
    add("--data_root", default="data", help="folder holding (or caching) the benchmark's files")
    add("--lr", type=float, default=1e-2, help="SGD learning rate of the task's weights")
    add("--lr_mask", type=float, default=5e-4, help="Adam learning rate of the piggymask (0 freezes it)")
    add("--batch_size", type=int, default=32)
    add("--val_batch_size", type=int, default=100)
    add("--weight_decay", type=float, default=4e-5, help="decay on the weights the task owns")
    add("--epochs", type=int, default=100)
    add("--save_folder", default=None, help="where this stage writes checkpoint.pth and meta.json")
    add("--load_folder", default=None, help="checkpoint folder this stage starts from")
    add("--initial_sparsity", type=float, default=0.0)
    add("--target_sparsity", type=float, default=0.1)
    add("--pruning_frequency", type=int, default=10, help="steps between mask updates")
    add("--pruning_interval", type=int, default=4, help="epochs over which the sparsity ramps up")
    add("--network_width_multiplier", type=float, default=1.0, help="parameter multiplier of the network")
    add("--max_allowed_network_width_multiplier", type=float, default=None,
        help="width cap (default: the network width, i.e. no growth)")
    add("--baseline_acc_file", default=None, help="JSON task -> accuracy goal (default: the benchmark's goals)")
    add("--jsonfile", "--record_file", dest="jsonfile", default=None, help="record.txt: sparsity -> accuracy")
    add("--log_path", default=None, help="train.log to append to")
    add("--logfile", default=None, help="baseline: accuracy-goal JSON to add this task's accuracy to")
    add("--total_num_tasks", type=int, default=None, help="tasks the capacity must last for (default: all)")
    add("--seed", type=int, default=1)
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_flags(parser)
    for name, add_method_flags in flag_adders().items():
        add_method_flags(parser.add_argument_group(f"{name} method"))
    return parser


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Reject combinations argparse cannot see, before any heavy import."""
    benchmark = get_benchmark(args.benchmark)
    args.arch = args.arch or benchmark.arch
    if args.dataset not in benchmark.task_names:
        parser.error(f"--dataset {args.dataset!r} is not a task of {args.benchmark}")
    if not Path(args.data_root).is_dir():
        parser.error(f"data root {args.data_root} does not exist (create it, or point --data_root at your data)")
    if args.max_allowed_network_width_multiplier is None:
        args.max_allowed_network_width_multiplier = args.network_width_multiplier
    if args.network_width_multiplier < 1.0:
        parser.error("--network_width_multiplier must be at least 1.0")
    if args.network_width_multiplier > args.max_allowed_network_width_multiplier:
        parser.error(f"--network_width_multiplier {args.network_width_multiplier} exceeds the cap "
                     f"{args.max_allowed_network_width_multiplier}")
    if args.total_num_tasks is None:
        args.total_num_tasks = len(benchmark.task_names)
    for name in ("batch_size", "val_batch_size", "epochs", "pruning_frequency", "total_num_tasks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.pruning_interval < 0:
        parser.error("--pruning_interval must not be negative")
    if not 0.0 <= args.initial_sparsity <= args.target_sparsity < 1.0:
        parser.error("sparsities must satisfy 0 <= initial <= target < 1")
    speed = Speed.from_args(args)
    if args.method not in ("cpg", "packnet", "baseline"):
        if not speed.is_default():
            parser.error(f"the speed flags apply to cpg, packnet and baseline, not --method {args.method}")
        return  # other methods check their own flags in their run()
    if speed.cuda_graph and not all(getattr(speed, name) for name in EXACT_PATHS):
        parser.error("--cuda_graph replays device-resident, device-summed steps with cached masks; "
                     "it cannot be combined with --plain or --no_* flags")
    needs = {"finetune": ("save_folder", "jsonfile"), "prune": ("save_folder", "load_folder", "jsonfile"),
             "retrain": ("save_folder", "load_folder"), "inference": ("load_folder",)}
    if args.method == "baseline":
        if args.mode in ("prune", "retrain"):
            parser.error(f"--method baseline has no {args.mode} stage")
        needs["finetune"] = ("save_folder",)
    for name in needs[args.mode]:
        if not getattr(args, name):
            parser.error(f"--mode {args.mode} needs --{name}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.process_start = float(os.environ.get(START_ENV, PROCESS_START))
        validate(args, parser)
    except DataError as error:
        parser.error(str(error))
    from utils.checkpoint import CheckpointError

    try:
        return int(run_method(args.method)(args))
    except MissingGoal as error:
        print(f"main_normal.py: {error}. Add the task's accuracy goal to a JSON file "
              f"(task name -> accuracy, e.g. from scripts/baseline_*.sh) and pass it as --baseline_acc_file.",
              file=sys.stderr)
        return ExitCode.NO_GOAL
    except (UsageError, RecordError, DataError) as error:
        print(f"main_normal.py: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except CheckpointError as error:
        print(f"main_normal.py: error: {error}", file=sys.stderr)
        return ExitCode.BAD_CHECKPOINT


if __name__ == "__main__":
    from utils.warm_start import run_remote

    os.environ[START_ENV] = repr(PROCESS_START)  # a warm child measures from this process's start
    code = run_remote(sys.argv[1:])
    if code is None:
        code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # every file is written and synced; skip the interpreter's ~1 s teardown of torch
