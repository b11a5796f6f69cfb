"""Print a benchmark's task names in learning order, one per line (no torch import: fast); --table or --json
describe each task (classes, images per split, image size, channels, normalisation) from its data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run as `python tools/list_tasks.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser, end_quietly_on_closed_pipe
from unforget.utils.data.registry import BENCHMARKS, Benchmark, DataError, get_benchmark

COLUMNS = ("task", "train", "validation", "test", "size", "channels", "mean", "std", "classes")


def describe(benchmark: Benchmark, data_root: Path) -> list[dict[str, Any]]:
    """Per task: its classes, its training images split as the stages split them (the benchmark's default
    --val_fraction held out to validate on, the rest trained on), its test images, image size, channels and
    normalisation. Loads each task (and so torch): what the default listing never does."""
    rows: list[dict[str, Any]] = []
    for name in benchmark.task_names:
        if benchmark.loader is None:  # no images: the method that uses it draws its inputs
            rows.append({"task": name, "classes": [], "train": None, "validation": None, "test": None,
                         "image_size": None, "channels": None, "mean": None, "std": None})
            continue
        task = benchmark.load_task(data_root, name)
        total = task.train_labels.numel()
        held = round(benchmark.val_fraction * total)
        channels, height, width = task.image_shape
        rows.append({"task": name, "classes": list(task.classes), "train": total - held, "validation": held,
                     "test": task.test_labels.numel(), "image_size": [height, width], "channels": channels,
                     "mean": [round(value, 4) for value in task.mean], "std": [round(value, 4) for value in task.std]})
    return rows


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if column == "size":
        value = None if row["image_size"] is None else "x".join(map(str, row["image_size"]))
    if value is None or value == []:
        return "-"
    if column == "classes":
        return f"{len(value)}: {', '.join(value)}"
    if column in ("mean", "std"):
        return ",".join(f"{number:.4f}" for number in value)
    return str(value)


def table(benchmark: Benchmark, rows: list[dict[str, Any]]) -> str:
    """The rows as aligned columns, numbers right-aligned, under a line naming the benchmark and its split."""
    cells = [list(COLUMNS)] + [[_cell(row, column) for column in COLUMNS] for row in rows]
    widths = [max(len(line[k]) for line in cells) for k in range(len(COLUMNS))]
    numeric = {"train", "validation", "test", "channels"}
    lines = [f"{benchmark.name}: {len(rows)} tasks; validation = {benchmark.val_fraction:g} of the training images "
             "(the default --val_fraction)"]
    for line in cells:
        lines.append("  ".join(text.rjust(width) if column in numeric else text.ljust(width)
                               for column, text, width in zip(COLUMNS, line, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help=f"a built-in benchmark ({', '.join(sorted(BENCHMARKS))}) or a benchmark "
                                          "spec file (*.json; see the README's \"Bring your own data\")")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--arch", action="store_true", help="print the default architecture instead")
    shown.add_argument("--table", action="store_true", help="describe each task as an aligned table (loads the data)")
    shown.add_argument("--json", action="store_true", help="the --table description as JSON")
    parser.add_argument("--data_root", type=Path, default=Path(os.environ.get("DATA_ROOT") or "data"),
                        help="where --table and --json find (or cache) the data (default: $DATA_ROOT, else data)")
    args = parser.parse_args(argv)
    try:
        benchmark = get_benchmark(args.benchmark)
        rows = describe(benchmark, args.data_root) if args.table or args.json else []
    except DataError as error:  # a driver passes this one line on and stops with exit 64
        parser.error(str(error))
    if args.json:
        print(json.dumps({"benchmark": benchmark.name, "val_fraction": benchmark.val_fraction, "tasks": rows},
                         indent=1))
    elif args.table:
        print(table(benchmark, rows))
    else:
        print((benchmark.arch or "") if args.arch else "\n".join(benchmark.task_names))
    return 0


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main())
