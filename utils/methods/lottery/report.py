"""The lottery report: accuracy against remaining weights for the ticket and its controls, over the
runs (seeds) under one folder, as a Markdown table and a plot (`python -m tools.lottery_report`). Torch-free:
it reads meta.json files."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from unforget.utils.atomic import atomic_write
from unforget.utils.methods.lottery.folders import LotteryFolders
from unforget.utils.methods.lottery.settings import CONTROLS

VARIANTS = ("ticket", *CONTROLS)
LABELS = {"ticket": "ticket (rewound)", "reinit": "random reinit", "random_mask": "random mask"}


class ReportError(Exception):
    """No runs, or a level's files that cannot be read."""


@dataclass
class Level:
    """One level over the runs: remaining share of the prunable weights and each variant's accuracies."""

    level: int
    remaining: list[float] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=lambda: {variant: [] for variant in VARIANTS})

    @property
    def sparsity(self) -> float:
        return 1.0 - statistics.fmean(self.remaining)


def find_runs(root: Path) -> list[Path]:
    """`root` itself when it is one run (it has level_0/), else every run folder right under it."""
    root = Path(root)
    if (root / "level_0").is_dir():
        return [root]
    return sorted(path.parent for path in root.glob("*/level_0") if path.is_dir())


def _meta(folder: Path) -> dict | None:
    path = folder / "meta.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        return {"accuracy": float(meta["accuracy"]), "remaining": float(meta["remaining"])}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReportError(f"cannot read {path}: {error}") from error


def collect(root: Path) -> tuple[list[Level], int]:
    """Every level any run finished, in level order, and the number of runs."""
    runs = find_runs(root)
    if not runs:
        raise ReportError(f"no lottery run under {root} (a folder with level_0/, or folders of such runs)")
    levels: dict[int, Level] = {}
    for run in runs:
        folders = LotteryFolders(run)
        level = 0
        while (ticket := _meta(folders.level(level))) is not None:
            entry = levels.setdefault(level, Level(level))
            entry.remaining.append(ticket["remaining"])
            entry.accuracy["ticket"].append(ticket["accuracy"])
            for control in CONTROLS:
                if (meta := _meta(folders.control(level, control))) is not None:
                    entry.accuracy[control].append(meta["accuracy"])
            level += 1
    if not levels:
        raise ReportError(f"no finished level under {root}")
    return [levels[k] for k in sorted(levels)], len(runs)


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f} (1)"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f} ({len(values)})"


def nearest_levels(levels: list[Level], targets: list[float]) -> dict[float, Level]:
    """For each target sparsity, the level whose sparsity is closest to it."""
    return {target: min(levels, key=lambda entry: abs(entry.sparsity - target)) for target in targets}


def markdown(levels: list[Level], runs: int, targets: list[float], title: str) -> str:
    """The table at the target sparsities (the nearest levels), then every level."""
    columns = "| level | sparsity | remaining | ticket | random reinit | random mask |"
    rule = "|---:|---:|---:|---|---|---|"

    def row(entry: Level) -> str:
        cells = " | ".join(_cell(entry.accuracy[variant]) for variant in VARIANTS)
        return f"| {entry.level} | {entry.sparsity:.1%} | {1 - entry.sparsity:.1%} | {cells} |"

    lines = [f"### {title}", "",
             f"Test accuracy, mean ± standard deviation over runs (count in brackets); {runs} run(s).", ""]
    if targets:
        lines += ["At the levels nearest the target sparsities:", "", "| target " + columns, "|---:" + rule]
        lines += [f"| {target:.0%} " + row(entry) for target, entry in nearest_levels(levels, targets).items()]
        lines += ["", "Every level:", ""]
    lines += [columns, rule, *(row(entry) for entry in levels)]
    return "\n".join(lines) + "\n"


def plot(levels: list[Level], path: Path, title: str) -> None:
    """Accuracy against remaining weights (log scale, dense on the left), mean with a band of one
    standard deviation, for the ticket and each control where it ran."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4))
    for variant, marker in zip(VARIANTS, ("o", "s", "^"), strict=True):
        points = [(1 - entry.sparsity, entry.accuracy[variant]) for entry in levels if entry.accuracy[variant]]
        if not points:
            continue
        x = [100 * remaining for remaining, _ in points]
        mean = [statistics.fmean(values) for _, values in points]
        spread = [statistics.stdev(values) if len(values) > 1 else 0.0 for _, values in points]
        axes.plot(x, mean, marker=marker, markersize=4, label=LABELS[variant])
        axes.fill_between(x, [m - s for m, s in zip(mean, spread, strict=True)],
                          [m + s for m, s in zip(mean, spread, strict=True)], alpha=0.2)
    axes.set_xscale("log")
    lowest = min(1 - entry.sparsity for entry in levels) * 100
    ticks = [tick for tick in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if tick >= lowest * 0.9]
    axes.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    axes.minorticks_off()
    axes.invert_xaxis()
    axes.set(xlabel="remaining weights (%)", ylabel="test accuracy")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def write_report(root: Path, targets: list[float], title: str | None = None) -> str:
    """report.md and accuracy.png in `root` (titled by `title`, else by the folder's name); returns the table.
    Raises ReportError, before writing anything, where there is nothing to report."""
    levels, runs = collect(root)
    title = title or root.resolve().name
    text = markdown(levels, runs, targets, title)
    atomic_write(root / "report.md", lambda file: file.write(text), binary=False)
    plot(levels, root / "accuracy.png", title)
    return text
