"""SupSup's report for `tools.report --checkpoints supsup` (its Layout in utils/methods/__init__.py, shared with
GG's transfer baseline): the accuracy matrix, rebuilt exactly from one network with every task's mask, the
storage cost, and the one-shot task-inference curve (task_inference.csv and its plot)."""

from __future__ import annotations

from pathlib import Path

from unforget.utils import metrics, plots
from unforget.utils.atomic import atomic_csv
from unforget.utils.methods.layout import ReportInputs
from unforget.utils.methods.matrices import state_bytes, storage, task_accuracies, task_data
from unforget.utils.methods.sequences import sequence_summary, write_metrics

INFERENCE_CSV = "task_inference.csv"


def supsup_network(root: Path, names: list[str]):
    """A SupSup run's network with every task's mask: GNu's one sequential model (<root>/model), the last
    task's folder when it holds every task (Transfer, whose tasks start from the earlier ones), or GG's
    one checkpoint per task (<root>/<task>) merged."""
    from unforget.utils.checkpoint import read_meta
    from unforget.utils.methods.supsup.checkpoints import load, merge

    if (root / "model" / "meta.json").is_file():
        network, _ = load(root / "model")
    elif [task["name"] for task in read_meta(root / names[-1])["tasks"]] == names:
        network, _ = load(root / names[-1])
    else:
        network, _ = merge([root / name for name in names])
    stored = [spec.name for spec in network.tasks]
    if stored[: len(names)] != names:
        from unforget.utils.checkpoint import CheckpointError

        raise CheckpointError(f"{root} holds the tasks {stored}, not {names} in that order")
    return network


def matrix_and_inference(root: Path, names: list[str], data: dict, device, objective: str = "h",
                         group: int = 1) -> tuple[metrics.Matrix, dict, list[dict]]:
    """R[i][j] of a SupSup run, task i with its own mask in the network as it was after task j (its first
    j+1 masks: a learned mask never changes, so dropping the later ones restores that network exactly),
    its cost, and the task-inference curve: for every number of tasks k, how often one-shot inference
    (`objective` h or g, images judged in groups of `group`) picks each learned task's own mask, and the
    accuracy with the inferred mask."""
    import torch

    from unforget.utils.methods.supsup.checkpoints import first_tasks
    from unforget.utils.methods.supsup.infer import infer_tasks

    network = supsup_network(root, names).to(device)
    meta = _meta_of(root, names)
    cost = storage(state_bytes(network.state_dict()), meta["arch"], network.tasks[: len(names)],
                   input_shape=tuple(meta["input_shape"]))
    network = first_tasks(network, len(names))
    matrix: metrics.Matrix = [[None] * len(names) for _ in names]
    curve = []
    for count in range(len(names), 0, -1):
        column = task_accuracies(network, {name: data[name] for name in names[:count]}, device)
        right_task = right_both = images_seen = 0
        for task, name in enumerate(names[:count]):
            matrix[task][count - 1] = column[name]
            if count == 1:
                continue
            images = torch.cat([images for images, _ in data[name].test_batches(500)])
            real = network.tasks[task].num_classes
            with torch.enable_grad():
                inferred = infer_tasks(network, images, "oneshot", objective, real, group)
            network.set_task(task + 1)
            with torch.no_grad():
                right_class = network(images).argmax(1) == data[name].test_labels
            right_task += int((inferred == task).sum())
            right_both += int(((inferred == task) & right_class).sum())
            images_seen += len(images)
        if count > 1:
            curve.append({"num_tasks": count, "task_inference_accuracy": round(right_task / images_seen, 4),
                          "accuracy_inferred_task": round(right_both / images_seen, 4),
                          "accuracy_given_task": round(sum(column.values()) / count, 4)})
        network = first_tasks(network, count - 1)
    return matrix, cost, curve[::-1]


def _meta_of(root: Path, names: list[str]) -> dict:
    from unforget.utils.checkpoint import read_meta

    return read_meta(root / "model" if (root / "model" / "meta.json").is_file() else root / names[0])


def summarise(inputs: ReportInputs) -> dict:
    """The generic record with the task-inference curve after the task names."""
    data = task_data(inputs.names, inputs.benchmark, inputs.data_root, inputs.device)
    matrix, cost, curve = matrix_and_inference(inputs.root, inputs.names, data, inputs.device, inputs.objective)
    return sequence_summary(inputs, matrix, cost, task_inference=curve)


def write(root: Path, summary: dict) -> None:
    """metrics.json and the heatmap, then the curve as CSV and plot (a one-task run has none)."""
    write_metrics(root, summary)
    if summary["task_inference"]:
        atomic_csv(root / INFERENCE_CSV, summary["task_inference"])
        plots.task_inference(root, summary["task_inference"])
