"""The generic layouts of tools.report (utils.methods.Layout): a run that keeps the network after each task
(a sequential finetune baseline, Piggyback's <root>/<task>/model) or one model per task learned alone. Each
ends in the record every layout but CPG's writes (metrics.json): the task names, R[i][j], the metrics of
utils/metrics.py and the bytes the run keeps against one plain width-1.0 network per task."""

from __future__ import annotations

from pathlib import Path

from unforget.utils import metrics, plots, run_board
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.methods import matrices
from unforget.utils.methods.layout import ReportInputs

METRICS = "metrics.json"


def sequence_summary(inputs: ReportInputs, matrix: metrics.Matrix, cost: dict, **extra) -> dict:
    """The record of a run's matrix: benchmark, task names, `extra` (SupSup's task inference), R[i][j], its
    metrics and the storage cost."""
    return {"benchmark": inputs.benchmark, "task_names": inputs.names, **extra, "accuracy_matrix": matrix,
            "metrics": metrics.metrics(matrix, inputs.names, inputs.baselines), "capacity": cost}


def sequential_summary(inputs: ReportInputs) -> dict:
    """R[i][j] with the checkpoint saved after task j (Piggyback's model, a finetune baseline's task
    folder, whose last task is task j); the cost is the last checkpoint's."""
    data = matrices.task_data(inputs.names, inputs.benchmark, inputs.data_root, inputs.device)
    kept: list[dict] = []
    matrix = matrices.accuracy_matrix(inputs.folders, inputs.names, data, inputs.device,
                                      lambda payload, network: kept.append(payload))
    specs = [payload["tasks"][-1] for payload in kept]
    cost = matrices.storage(matrices.state_bytes(kept[-1]["model"]), kept[-1]["arch"], specs,
                            **matrices.arch_options(kept[-1], inputs.folders[-1]))
    return sequence_summary(inputs, matrix, cost)


def independent_summary(inputs: ReportInputs) -> dict:
    """One model per task learned alone: nothing later touches it, so R[i][j] = R[i][i] for every j >= i
    (each model is evaluated once); the cost is every model kept."""
    names = inputs.names
    data = matrices.task_data(names, inputs.benchmark, inputs.data_root, inputs.device)
    matrix: metrics.Matrix = [[None] * len(names) for _ in names]
    kept, specs = 0, []
    for i, (folder, name) in enumerate(zip(inputs.folders, names, strict=True)):
        payload, network = matrices.checkpoint_network(folder)
        accuracy = matrices.task_accuracies(network, {name: data[name]}, inputs.device)[name]
        matrix[i][i:] = [accuracy] * (len(names) - i)
        kept += matrices.state_bytes(payload["model"])
        specs.append(payload["tasks"][-1])
    cost = matrices.storage(kept, payload["arch"], specs, **matrices.arch_options(payload, inputs.folders[-1]))
    return sequence_summary(inputs, matrix, cost)


def format_metrics(summary: dict) -> str:
    """The metrics on one line; one the run has too few tasks for reads n/a."""
    labels = {"average_accuracy": "ACC", "backward_transfer": "BWT", "forgetting": "forgetting",
              "forward_transfer": "FWT"}
    return "  ".join(f"{labels[key]} {'n/a' if value is None else f'{value:.4f}'}"
                     for key, value in summary["metrics"].items())


def write_metrics(root: Path, summary: dict) -> None:
    """metrics.json, the matrix's heatmap and the run's TensorBoard summary, then the metrics line."""
    atomic_json_dump(summary, root / METRICS)
    plots.heatmap(root, summary)
    run_board.write_summary(root, summary)
    print(format_metrics(summary))
    print(f"matrix and metrics written to {root / METRICS} and {root / metrics.MATRIX_CSV}")
