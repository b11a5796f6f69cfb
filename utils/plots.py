"""The report's PNG plots (matplotlib, Agg, no torch): the accuracy matrix as a heatmap, each task's
sparsity-versus-accuracy curve from its pruning record, each task's capacity over the sequence, SupSup's
task-inference accuracy against the number of tasks, SupSup NNs' new-task checks, HopSupSup's recoveries,
and methods side by side. Below the methods, whose reports draw them."""

from __future__ import annotations

import math
from pathlib import Path

from unforget.utils.records import read_record
from unforget.utils.run_files import read_json

HEATMAP = "accuracy_matrix.png"
PRUNING = "pruning_curves.png"
CAPACITY = "capacity.png"
TASK_INFERENCE = "task_inference.png"
COMPARISON = "comparison.png"
NNS_CHECKS = "nns_checks.png"
HOPFIELD_RECOVERY = "hopfield_recovery.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(root: Path, summary: dict) -> Path:
    """R[i][j] as colours with each value written in its cell; blank above the diagonal."""
    plt = _pyplot()
    names, matrix = summary["task_names"], summary["accuracy_matrix"]
    values = [[math.nan if value is None else value for value in row] for row in matrix]
    size = max(4.0, 0.9 * len(names) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                          color="black" if value > 0.6 else "white")
    axes.set_xticks(range(len(names)), [f"after {name}" for name in names], rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("checkpoint (after task j)")
    axes.set_ylabel("evaluated task i")
    axes.set_title("test accuracy R[i][j]")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _save(figure, root / HEATMAP)


def pruning_curves(root: Path, names: list[str]) -> Path:
    """One subplot per task: accuracy at each recorded sparsity (gradual_prune/record.txt), the task's goal
    and the sparsity chosen (chosen.json)."""
    plt = _pyplot()
    columns = min(len(names), 4)
    rows = -(-len(names) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    for axes, name in zip(grid.flat, names, strict=False):
        folder = root / name / "gradual_prune"
        record = read_record(folder / "record.txt")
        chosen = read_json(folder / "chosen.json", "sparsity")
        points = sorted((float(key), value) for key, value in record.items())
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label="accuracy")
        goal = chosen.get("goal")
        if isinstance(goal, (int, float)) and goal > 0:
            axes.axhline(goal, color="tab:red", linestyle="--", linewidth=1, label=f"goal {goal:.3f}")
        if chosen["sparsity"] in record:
            axes.plot([float(chosen["sparsity"])], [record[chosen["sparsity"]]], marker="*", markersize=14,
                      color="tab:orange", linestyle="none", label=f"chosen {chosen['sparsity']}")
        axes.set_title(name, fontsize=9)
        axes.set_xlabel("sparsity")
        axes.set_ylabel("accuracy")
        axes.set_xlim(-0.03, 1.0)
        axes.legend(fontsize=7, loc="lower left")
    for axes in list(grid.flat)[len(names):]:
        axes.set_visible(False)
    return _save(figure, root / PRUNING)


def capacity_bars(root: Path, summary: dict) -> Path:
    """Per task, stacked: weights owned by earlier tasks it does not use, those it picks, those it owns,
    and those left free after it; the bar's height is the network at the task's width, so whatever rises
    above the dashed width-1.0 line is growth. The title warns of tasks that kept every free weight and of
    tasks left with none."""
    plt = _pyplot()
    cost = summary["capacity"]
    rows = cost["tasks"]
    labels = [row["task"] for row in rows]
    earlier_owned, owned_so_far = [], 0
    for row in rows:
        earlier_owned.append(owned_so_far)
        owned_so_far += row["owned_weights"]
    unused = [earlier - row["picked_weights"] for earlier, row in zip(earlier_owned, rows, strict=True)]
    segments = [("earlier tasks', not used", unused, "0.75"),
                ("picked from earlier tasks", [r["picked_weights"] for r in rows], "tab:blue"),
                ("owned (its own)", [r["owned_weights"] for r in rows], "tab:green"),
                ("free after it", [r["free_weights_after"] for r in rows], "tab:olive")]
    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 3.0), 4.2))
    bottom = [0] * len(rows)
    for label, heights, colour in segments:
        axes.bar(labels, heights, bottom=bottom, label=label, color=colour, edgecolor="white")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.axhline(cost["unexpanded_weights"], color="black", linestyle="--", linewidth=1,
                 label="width 1.0 (above: growth)")
    axes.set_ylabel("shared weights")
    title = "capacity per task (height: network at the task's width)"
    kept = [row["task"] for row in summary["tasks"] if row.get("kept_every_free_weight")]
    starved = [row["task"] for row in summary["tasks"] if row.get("starved")]
    if kept or starved:
        notes = [f"{', '.join(kept)} kept every free weight"] if kept else []
        notes += [f"{', '.join(starved)} had none left (exit 5)"] if starved else []
        title += f"\nwarning: {'; '.join(notes)} (see warnings in summary.json)"
    axes.set_title(title, color="tab:red" if kept or starved else "black")
    axes.tick_params(axis="x", rotation=30)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, root / CAPACITY)


def task_inference(root: Path, curve: list[dict]) -> Path:
    """SupSup: how often one-shot inference picks the right mask, and the accuracy with the inferred mask
    against that with the task given, as the number of learned tasks (candidate masks) grows."""
    plt = _pyplot()
    counts = [row["num_tasks"] for row in curve]
    figure, axes = plt.subplots(figsize=(5.6, 3.8))
    for key, label, style in (("task_inference_accuracy", "task inferred right", "o-"),
                              ("accuracy_inferred_task", "accuracy, inferred mask", "s-"),
                              ("accuracy_given_task", "accuracy, task given", "^--")):
        axes.plot(counts, [row[key] for row in curve], style, label=label, markersize=5)
    axes.set_xticks(counts)
    axes.set_xlabel("tasks learned (masks to choose from)")
    axes.set_ylabel("fraction of test images")
    axes.set_ylim(0.0, 1.02)
    axes.set_title("SupSup one-shot task inference")
    axes.legend(fontsize=8, loc="lower left")
    return _save(figure, root / TASK_INFERENCE)


def nns_checks(root: Path, checks: list[dict], epsilon: float) -> Path:
    """SupSup NNs: each new-task check's n max nu along the stream, marked by its decision, against the
    1 + epsilon line below which a check allocates, with the masks allocated so far; the stream's tasks
    are shaded (up to 40 of them) so a wrong call shows as a marker on the wrong side of the line."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(7.2, 3.9))
    tasks = list(dict.fromkeys(check["stream_task"] for check in checks))
    if len(tasks) <= 40:
        edges = [int(check["batch"]) for k, check in enumerate(checks)
                 if k == 0 or check["stream_task"] != checks[k - 1]["stream_task"]]
        ends = [*edges[1:], int(checks[-1]["batch"]) + 1]
        for k, (start, end) in enumerate(zip(edges, ends, strict=True)):
            axes.axvspan(start - 0.5, end - 0.5, color="0.93" if k % 2 else "white", zorder=0)
            if len(tasks) <= 12:
                axes.text((start + end) / 2, 1.0, tasks[k], transform=axes.get_xaxis_transform(), ha="center",
                          va="bottom", fontsize=6, color="0.35")
    styles = {"known": ("o", "C0"), "new": ("^", "C3"), "new_untrained_won": ("v", "C1"), "budget_spent": ("x", "0.4")}
    for decision, (marker, colour) in styles.items():
        chosen = [check for check in checks if check["decision"] == decision]
        if chosen:
            axes.scatter([int(check["batch"]) for check in chosen], [float(check["n_max_nu"]) for check in chosen],
                         marker=marker, color=colour, s=22, label=decision.replace("_", " "), zorder=3)
    axes.axhline(1.0 + epsilon, color="black", linestyle="--", linewidth=1, label=f"1 + ε = {1 + epsilon:g}")
    axes.set_xlabel("training batch of the stream")
    axes.set_ylabel("n · max ν at the check")
    axes.set_title(f"SupSup NNs new-task checks ({len(tasks)} tasks in the stream)", pad=12)
    masks = axes.twinx()
    masks.step([int(check["batch"]) for check in checks], [int(check["masks_allocated"]) for check in checks],
               where="post", color="C2", linewidth=1.2)
    masks.set_ylabel("masks allocated", color="C2")
    masks.tick_params(axis="y", colors="C2")
    masks.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=7, loc="best")
    return _save(figure, root / NNS_CHECKS)


def hopfield_recovery(root: Path, summary: dict) -> Path:
    """HopSupSup: per task, the recovery's overlap with the task's own stored mask (the lower of the two
    layers: 1 once recovered) and the entropy it descends, step by step; entropy first, energy later."""
    plt = _pyplot()
    figure, (overlap, entropy) = plt.subplots(1, 2, figsize=(9.0, 3.7))
    for k, (task, steps) in enumerate(summary["recovery_trace"].items()):
        numbers = [step["step"] for step in steps]
        overlap.plot(numbers, [min(step["own_overlap"]) for step in steps], color=f"C{k % 10}", label=task)
        entropy.plot(numbers, [step["entropy"] for step in steps], color=f"C{k % 10}", label=task)
    overlap.axhline(1.0, color="black", linestyle="--", linewidth=1)
    overlap.set_ylim(min(-0.05, overlap.get_ylim()[0]), 1.05)
    overlap.set_xlabel("recovery step")
    overlap.set_ylabel("overlap with the own stored mask")
    overlap.set_title("recovered when it reaches 1 (both layers)")
    entropy.set_xlabel("recovery step")
    entropy.set_ylabel("mean output entropy")
    entropy.set_title("entropy of the task's test batch")
    entropy.legend(fontsize=7)
    figure.suptitle(f"HopSupSup recovery, {summary['hidden']} units a layer")
    return _save(figure, root / HOPFIELD_RECOVERY)


def comparison(folder: Path, rows: list[dict]) -> Path:
    """Per row of tools/runs.py (a method at its settings): average accuracy (mean, and std over seeds where
    there are several) beside its storage against one network per task, the two axes a continual learner
    trades."""
    plt = _pyplot()
    several = len({row["benchmark"] for row in rows}) > 1  # then the method alone does not name a row
    labels = ["\n".join([row["method"], *([row["benchmark"]] if several else []), *row["differences"]])
              for row in rows]
    lines = max(label.count("\n") for label in labels)
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(7.0, 1.4 * len(rows) + 3.0), 3.9 + 0.15 * lines))
    colours = [f"C{k}" for k in range(len(rows))]
    spreads = [math.nan if row["acc_std"] is None else row["acc_std"] for row in rows]  # NaN: no error bar
    left.bar(labels, [row["acc_mean"] for row in rows], yerr=spreads, capsize=4, color=colours)
    left.set_ylim(max(0.0, min(row["acc_mean"] for row in rows) - 0.15), 1.0)
    left.set_ylabel("average accuracy after the last task")
    left.set_title("ACC (mean ± std over seeds)")
    right.bar(labels, [row["capacity_mean"] for row in rows], color=colours)
    right.axhline(1.0, color="black", linestyle="--", linewidth=1, label="one network per task")
    right.set_ylabel("bytes kept / one plain width-1.0 net per task", fontsize=8)
    right.set_title("storage")
    right.legend(fontsize=7)
    for axes in (left, right):
        axes.tick_params(axis="x", rotation=30, labelsize=7 if lines else None)
    return _save(figure, folder / COMPARISON)


def write_all(root: Path, summary: dict) -> list[Path]:
    """Every plot of a CPG-family summary, next to it."""
    return [heatmap(root, summary), pruning_curves(root, summary["task_names"]), capacity_bars(root, summary)]


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    figure.clear()
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
