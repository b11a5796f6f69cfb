"""SupSup's results CSV (--supsup_results): rows added across evaluations, one per (tasks learned, task)."""

from __future__ import annotations

import csv
from pathlib import Path

from unforget.utils.atomic import atomic_csv


def add_csv_rows(path: Path, rows: list[dict]) -> None:
    """Add rows to the CSV, replacing earlier rows of the same (tasks learned, task), written atomically:
    a rerun of an interrupted evaluation neither duplicates rows nor loses the header."""
    earlier = []
    if path.is_file():
        with path.open(newline="") as file:
            earlier = list(csv.DictReader(file))
    keys = {(str(row["num_tasks_learned"]), row["task"]) for row in rows}
    kept = [row for row in earlier if (row.get("num_tasks_learned"), row.get("task")) not in keys]
    atomic_csv(path, [*kept, *rows], fieldnames=list(rows[0]), extrasaction="ignore")  # the new rows' columns
