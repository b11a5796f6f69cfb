"""The recovery report: report.json (the numbers), report.txt (a table) and recovery.png (log scale); and
the Markdown table of several runs, one row per report.json (`python -m tools.extract`, which parses the
arguments)."""

from __future__ import annotations

import json
from pathlib import Path

from unforget.utils.atomic import atomic_json_dump, atomic_write

PLOT_FLOOR = 1e-8  # zero dissimilarities are drawn here, below the plot's 1e-6 .. 1 range of interest


def table(report: dict) -> str:
    """One row per hidden layer and stage: recovered neurons, worst dissimilarity, sizes, loss."""
    lines = [f"{'stage':<22}{'layer':>6}{'recovered':>11}{'max 1-|cos|':>13}{'max out':>10}{'size':>9}"
             f"{'excess':>8}{'test loss':>12}"]
    for stage in ("after_reconstruction", "after_tuning"):
        for layer in report[stage]["layers"]:
            outgoing = f"{max(layer['outgoing']):.1e}" if "outgoing" in layer else "-"
            lines.append(f"{stage:<22}{layer['layer']:>6}{layer['recovered']:>6}/{layer['teacher_size']:<4}"
                         f"{layer['max_incoming']:>13.1e}{outgoing:>10}"
                         f"{layer['rebuilt_size']:>5}/{layer['teacher_size']:<3}{layer['excess']:>8}"
                         f"{report[stage]['test_loss']:>12.2e}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Per teacher neuron (largest outgoing norm first) its incoming dissimilarity, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ("after_reconstruction", "after_tuning")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, stage in zip(axes, stages, strict=True):
        for layer in report[stage]["layers"]:
            values = [max(v, PLOT_FLOOR) for v in layer["incoming"]]
            axis.semilogy(range(1, len(values) + 1), values, "o-", label=f"layer {layer['layer']} in")
            if "outgoing" in layer:
                values = [max(v, PLOT_FLOOR) for v in layer["outgoing"]]
                axis.semilogy(range(1, len(values) + 1), values, "x--", label=f"layer {layer['layer']} out")
        axis.set_title(stage.replace("_", " "))
        axis.set_xlabel("teacher neuron (by outgoing norm)")
        axis.set_ylim(PLOT_FLOOR / 2, 1.5)
        axis.legend()
    axes[0].set_ylabel("1 - |cos| to best rebuilt neuron")
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    plt.close(figure)


def write_report(report: dict, folder: Path) -> str:
    """Write the three files into `folder`; returns the table."""
    atomic_json_dump(report, folder / "report.json")
    text = table(report)
    atomic_write(folder / "report.txt", lambda file: file.write(text), binary=False)
    plot(report, folder / "recovery.png")
    return text


def copy_report(report: dict, text: str, path: Path) -> None:
    """The report's JSON at `path` and its table beside it (`.txt`), where a driver asked for them."""
    atomic_json_dump(report, path)
    atomic_write(path.with_suffix(".txt"), lambda file: file.write(text), binary=False)


SEEDS_HEADER = ("| seed | teacher accuracy | recovered / teacher neurons | excess | rebuilt sizes | max 1-abs(cos) "
                "| test loss | worst student loss | seconds |",
                "|---|---|---|---|---|---|---|---|---|")


def seed_row(report: dict) -> str:
    """One run's row of the table under SEEDS_HEADER: after the final fine-tune, per hidden layer."""
    tuned = report["after_tuning"]
    layers = tuned["layers"]
    recovered = " ".join(f"{layer['recovered']}/{layer['teacher_size']}" for layer in layers)
    excess = " ".join(str(layer["excess"]) for layer in layers)
    worst = " ".join(f"{layer['max_incoming']:.1e}" for layer in layers)
    sizes = " ".join(f"{layer['rebuilt_size']}" for layer in layers)
    students = " ".join(f"{max(losses):.1e}" for losses in report.get("student_losses", []))
    accuracy = report.get("teacher_accuracy")
    shown = "-" if accuracy is None else f"{accuracy:.3f}"
    return (f"| {report['settings']['seed']} | {shown} | {recovered} | {excess} | {sizes} | {worst} "
            f"| {tuned['test_loss']:.2e} | {students or '-'} | {report['seconds']:.0f} |")


class ReportFileError(Exception):
    """A report.json that cannot be read or lacks what the table shows."""


def seeds_table(paths: list[Path]) -> str:
    """The table under SEEDS_HEADER, one row per report.json."""
    lines = list(SEEDS_HEADER)
    for path in paths:
        try:
            lines.append(seed_row(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError) as error:
            raise ReportFileError(f"cannot read report {path}: {error}") from error
    return "\n".join(lines)
