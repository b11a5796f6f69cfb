"""Finished runs side by side: one Markdown row per method (and benchmark), mean ± std over its seeds.

A run folder is what a driver finished: run.json (method, benchmark, seed; scripts/lib.sh
`write_run_card`) beside the report's summary.json (CPG, PackNet) or metrics.json (every other layout),
which hold the accuracy matrix's metrics and the storage cost. Time is the run's stages' wall time added
up (each stage's `.stages/<stage>.seconds`): what the run costs on one device, however it was spread.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from tools.checkpoints import CheckpointFileError, read_json
from utils.atomic import atomic_write
from utils.cli import UsageParser

CARD = "run.json"
TABLE = "comparison.md"


def read_run(root: Path) -> dict:
    """One run: its card and the numbers of its report."""
    card = read_json(root / CARD, "method", "benchmark", "seed")
    report = _report(root)
    seconds = sum(_seconds(path) for path in root.rglob(".stages/*.seconds"))
    return {"method": str(card["method"]), "benchmark": str(card["benchmark"]), "seed": card["seed"],
            "acc": report["metrics"]["average_accuracy"], "bwt": report["metrics"]["backward_transfer"],
            "forgetting": report["metrics"]["forgetting"],
            "capacity": report["capacity"]["model_vs_independent"], "seconds": seconds}


def _seconds(path: Path) -> float:
    try:
        value = float(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointFileError(f"{path} does not hold a stage's seconds ({error})") from error
    if not math.isfinite(value) or value < 0:
        raise CheckpointFileError(f"{path} does not hold a stage's seconds ({value})")
    return value


def _report(root: Path) -> dict:
    """The run's report holding the accuracy matrix: CPG's summary.json, else metrics.json (each read once)."""
    for path in (root / "summary.json", root / "metrics.json"):
        report = read_json(path) if path.is_file() else {}
        if "accuracy_matrix" in report:
            if "metrics" not in report or "capacity" not in report:
                raise CheckpointFileError(f"{path} is not what this toolkit wrote "
                                          "(expected the keys metrics, capacity)")
            return report
    raise CheckpointFileError(f"{root} holds no report with an accuracy matrix (summary.json or metrics.json): "
                              "run its driver to the end")


def _spread(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for one seed) of the values that exist."""
    values = [value for value in values if value is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (method, benchmark), in the order they first appear."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["method"], run["benchmark"]), []).append(run)
    rows = []
    for (method, benchmark), members in groups.items():
        row = {"method": method, "benchmark": benchmark, "seeds": sorted(run["seed"] for run in members)}
        for key in ("acc", "bwt", "forgetting", "capacity", "seconds"):
            row[f"{key}_mean"], row[f"{key}_std"] = _spread([run[key] for run in members])
        rows.append(row)
    return rows


def _cell(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """The table: average accuracy, backward transfer and forgetting (mean ± std over seeds), storage
    against one network per task, stage time."""
    several = len({row["benchmark"] for row in rows}) > 1
    header = ["method", *(["benchmark"] if several else []), "seeds", "ACC", "BWT", "forgetting",
              "storage (× one net per task)", "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"], *([row["benchmark"]] if several else []), " ".join(map(str, row["seeds"])),
                 _cell(row["acc_mean"], row["acc_std"], 4), _cell(row["bwt_mean"], row["bwt_std"], 4),
                 _cell(row["forgetting_mean"], row["forgetting_std"], 4),
                 "n/a" if row["capacity_mean"] is None else f"{row['capacity_mean']:.2f}",
                 _cell(row["seconds_mean"], row["seconds_std"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(parser: UsageParser, roots: list[Path], out: Path | None) -> int:
    missing = [str(root) for root in roots if not (root / CARD).is_file()]
    if missing:
        parser.error(f"no finished run (no {CARD}) in {', '.join(missing)}")
    rows = aggregate([read_run(root) for root in roots])
    table = markdown(rows)
    print(table)
    if out is not None:
        from tools import plots

        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / TABLE, lambda file: file.write(table + "\n"), binary=False)
        plots.comparison(out, rows)
        print(f"table and plot written to {out / TABLE} and {out / plots.COMPARISON}")
    return 0
