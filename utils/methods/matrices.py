"""Accuracy matrices and storage cost from the checkpoints a run keeps, shared by every method's report
(CPG's summary, SupSup's and the generic layouts of utils/methods/sequences.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from unforget.utils.data.registry import get_benchmark
from unforget.utils.metrics import Matrix

if TYPE_CHECKING:
    from unforget.models.network import TaskNetwork


def task_accuracies(network, data: dict, device) -> dict[str, float]:
    """Accuracy of each task in `data` (name -> DeviceTaskData) with the network's checkpoint."""
    from unforget.utils.engine import evaluate

    network.to(device)
    accuracies = {}
    for name, task_data in data.items():
        network.set_task(_task_of(network, name))
        accuracies[name] = round(evaluate(network, task_data), 4)
    return accuracies


def _task_of(network, name: str) -> int:
    """The task that answers for `name`: its own, or in a plain finetune baseline (whose latest task took
    over the earlier ones' weights and head) the latest."""
    from unforget.utils.checkpoint import CheckpointError

    if name in [spec.name for spec in network.tasks]:
        return network.task_id(name)
    if network.mode == "plain":
        return len(network.tasks)
    raise CheckpointError(f"the checkpoint holds no task {name!r}")


def task_data(names: list[str], benchmark: str, data_root: Path, device) -> dict:
    """Each named task of the benchmark on the device (name -> DeviceTaskData), loaded once for the report."""
    spec = get_benchmark(benchmark)
    return {name: spec.load_task(data_root, name).on_device(device, spec.crop_padding, spec.flip) for name in names}


def arch_options(payload: dict, folder: Path) -> dict:
    """The architecture options that rebuild a checkpoint as it was (input shape, outputs: SupSup and the GG
    baselines size LeNet and FC nets to the data): the payload's own, or for a format-1 checkpoint its
    meta.json's."""
    from unforget.utils.checkpoint import build_options

    return build_options(payload, folder)


def checkpoint_network(folder: Path) -> tuple[dict, TaskNetwork]:
    """(payload, network) of the checkpoint in `folder`, rebuilt from the checkpoint alone (a format-1 one
    with the options its meta records)."""
    from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint

    payload = load_checkpoint(folder)
    return payload, network_from_checkpoint(payload, **arch_options(payload, folder))


def accuracy_matrix(folders: list[Path], names: list[str], data: dict, device, visit=None) -> Matrix:
    """R[i][j]: task i's test accuracy with the checkpoint in folders[j] (the one saved after task j), for
    i <= j, None above the diagonal. Each checkpoint is loaded once; `visit(payload, network)` sees each."""
    matrix: Matrix = [[None] * len(names) for _ in names]
    for j, folder in enumerate(folders):
        payload, network = checkpoint_network(folder)
        column = task_accuracies(network, {name: data[name] for name in names[: j + 1]}, device)
        for i, name in enumerate(names[: j + 1]):
            matrix[i][j] = column[name]
        if visit is not None:
            visit(payload, network)
    return matrix


def state_bytes(state: dict) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in state.values())


def storage(kept_bytes: int, arch: str, tasks: list, **arch_options) -> dict:
    """The bytes a run keeps against one plain network of `arch` (built with `arch_options`) at width 1.0
    per task (TaskSpecs; the upper bound a continual learner should stay under)."""
    from unforget.models import build_network
    from unforget.models.network import TaskSpec

    independent = sum(state_bytes(build_network(arch, 1.0, [TaskSpec(spec.name, spec.num_classes, 1.0)],
                                                mode="plain", **arch_options).state_dict()) for spec in tasks)
    return {"model_bytes": kept_bytes, "independent_models_bytes": independent,
            "model_vs_independent": round(kept_bytes / independent, 4)}
