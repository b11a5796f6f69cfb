"""Files a subspace evaluation leaves behind: the alpha sweep as CSV, its plot (PNG) and a JSON summary."""

from __future__ import annotations

import csv
from pathlib import Path

from unforget.utils.atomic import atomic_json_dump

COLUMNS = ("alpha", "accuracy", "paired_alpha", "ensemble_accuracy")


def write_csv(rows: list[dict], path: Path) -> None:
    with Path(path).open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy at alpha and of the (alpha, 1 - alpha) ensemble, against alpha."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    alphas = [row["alpha"] for row in rows]
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    axes.plot(alphas, [row["accuracy"] for row in rows], marker="o", markersize=3, label="model at alpha")
    axes.plot(alphas, [row["ensemble_accuracy"] for row in rows], marker="s", markersize=3,
              label="ensemble of alpha and 1 - alpha")
    axes.set(xlabel="alpha", ylabel="test accuracy", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def write_report(rows: list[dict], summary: dict, folder: Path, title: str) -> dict[str, Path]:
    """sweep.csv, sweep.png and summary.json in `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "sweep.csv", "png": folder / "sweep.png", "summary": folder / "summary.json"}
    write_csv(rows, paths["csv"])
    plot(rows, paths["png"], title)
    atomic_json_dump(summary, paths["summary"])
    return paths
