"""Per-task table and run summary JSON of a CPG run (docs/design.md#file-formats), the accuracy matrix of any other
run, the table of several runs side by side, or a checkpoint's settings.

`--checkpoints NAME` names a run's layout, one a method declares in the registry (utils.methods.Layout); the
method's own report code reads it: CPG's and PackNet's full summary (gradual_prune, the default;
utils/methods/cpg/report.py), the matrix, metrics and storage cost (metrics.json) of Piggyback, a sequential
finetune baseline or independent models (model, task, independent; utils/methods/sequences.py), and SupSup's,
with its task-inference curve (supsup; utils/methods/supsup/report.py). Every layout also writes the matrix as
accuracy_matrix.csv. This tool checks the arguments and the finished task folders, and turns a bad file into
its exit code. `--runs ROOT...` compares finished runs (tools/runs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/report.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.tools import runs
from unforget.utils.cli import UsageError, UsageParser
from unforget.utils.data.registry import DataError, get_benchmark
from unforget.utils.methods import layouts
from unforget.utils.methods.cpg.report import format_table as format_table  # tools/results.py's table of a summary
from unforget.utils.methods.cpg.report import starvation as starvation  # tests/methods/cpg/test_starvation.py
from unforget.utils.methods.cpg.report import summarise as summarise  # tests/methods/cpg/test_validation.py
from unforget.utils.methods.layout import Layout, ReportInputs
from unforget.utils.methods.sequences import METRICS
from unforget.utils.metrics import MATRIX_CSV, write_matrix_csv
from unforget.utils.run_files import CheckpointFileError, read_json

LAYOUTS = layouts()


def format_settings(meta: dict) -> str:
    """The settings a checkpoint was made with, one `--flag value` per line (switches alone when on)."""
    lines = []
    for name, value in meta["settings"].items():
        if value is True:
            lines.append(f"--{name}")
        elif value is not None and value is not False:
            lines.append(f"--{name} {value}")
    return "\n".join(lines)


def print_settings(parser: UsageParser, folder: Path) -> int:
    meta = read_json(folder / "meta.json")
    if not isinstance(meta.get("settings"), dict):
        parser.error(f"{folder / 'meta.json'} holds no settings: it predates settings in meta.json")
    print(format_settings(meta))
    return 0


def summary_of(parser: UsageParser, args, layout: Layout) -> dict:
    if args.root is None:
        parser.error("--root is needed (or --settings FOLDER)")
    if args.num_tasks is not None and args.num_tasks < 1:
        parser.error(f"--num_tasks must be at least 1, got {args.num_tasks}")
    if not args.data_root.is_dir():
        parser.error(f"data root {args.data_root} does not exist: pass --data_root, the folder the run used")
    try:
        names = list(get_benchmark(args.benchmark).task_names[: args.num_tasks])
    except DataError as error:
        parser.error(str(error))
    missing = layout.missing(args.root, names)
    if missing:
        parser.error(f"no finished task folder for {', '.join(missing)} under {args.root}")
    from unforget.utils.checkpoint import CheckpointError
    from unforget.utils.device import resolve_device
    from unforget.utils.records import RecordError, read_goals

    try:
        baselines = read_goals(args.baseline_acc_file) if args.baseline_acc_file else None
        return layout.summary_of(ReportInputs(args.root, names, layout.folders(args.root, names), args.benchmark,
                                              args.data_root, resolve_device(args.device), baselines,
                                              args.inference_objective))
    except (UsageError, DataError, RecordError) as error:
        parser.error(str(error))
    except CheckpointError as error:
        parser.bad_checkpoint(str(error))
    except (KeyError, IndexError, TypeError, ValueError) as error:
        parser.bad_checkpoint(f"a meta.json or chosen.json under {args.root} is malformed ({error!r})")


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="checkpoints/CPG/<experiment>/<setting>/<arch>")
    parser.add_argument("--settings", type=Path, metavar="FOLDER",
                        help="print the settings a checkpoint folder was made with, as flags, and stop")
    parser.add_argument("--benchmark", default="split_digits")
    parser.add_argument("--data_root", default="data", type=Path)
    parser.add_argument("--num_tasks", type=int, default=None, help="first N tasks of the benchmark (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoints", choices=sorted(LAYOUTS), default="gradual_prune",
                        help="where each task's final checkpoint is: <root>/<task>/gradual_prune (CPG, PackNet; the "
                             "full summary), <root>/<task>/model (Piggyback), <root>/<task> (a sequential finetune "
                             "baseline; or independent models, one per task), or a SupSup run (<root>/<task> of GG, "
                             f"<root>/model of GNu); all but the first write the matrix, metrics and cost to {METRICS}")
    parser.add_argument("--baseline_acc_file", type=Path, default=None,
                        help="accuracy of each task learned alone (a goal file of independent models): adds FWT")
    parser.add_argument("--inference_objective", choices=("h", "g"), default="h",
                        help="SupSup: the objective of the one-shot task inference curve (h: entropy, g: needs "
                             "superfluous output neurons)")
    parser.add_argument("--runs", type=Path, nargs="+", metavar="ROOT",
                        help="finished run folders (each with run.json): print one Markdown table, a row per "
                             "method, benchmark and settings, mean ± std over seeds, and stop")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --runs: also write the table (comparison.md) and its plot (comparison.png) here")
    args = parser.parse_args(argv)
    try:
        if args.settings:
            return print_settings(parser, args.settings)
        if args.runs:
            return runs.main(parser, args.runs, args.out)
        layout = LAYOUTS[args.checkpoints]
        summary = summary_of(parser, args, layout)
    except CheckpointFileError as error:
        parser.bad_checkpoint(str(error))
    write_matrix_csv(args.root / MATRIX_CSV, summary["task_names"], summary["accuracy_matrix"])
    layout.write_out(args.root, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
