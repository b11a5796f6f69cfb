"""Accuracy matrices of every run layout, each read from the checkpoints its driver keeps: CPG and
PackNet (whose summary in tools/report.py builds on them), Piggyback, a sequential finetune baseline,
independent models and SupSup, with their storage cost.

Every layout but CPG's ends in the same record (metrics.json): the task names, R[i][j], the metrics of
tools/metrics.py and the bytes of what the run keeps against one plain width-1.0 network per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tools import metrics
from utils.data.registry import get_benchmark

if TYPE_CHECKING:
    from models.network import TaskNetwork

LAYOUTS = {"gradual_prune": "gradual_prune", "model": "model", "task": ".", "independent": ".", "supsup": "."}
"""--checkpoints of tools.report: where each task's final checkpoint is under <root>/<task>/"""


def task_accuracies(network, data: dict, device) -> dict[str, float]:
    """Accuracy of each task in `data` (name -> DeviceTaskData) with the network's checkpoint."""
    from utils.engine import evaluate

    network.to(device)
    accuracies = {}
    for name, task_data in data.items():
        network.set_task(_task_of(network, name))
        accuracies[name] = round(evaluate(network, task_data), 4)
    return accuracies


def _task_of(network, name: str) -> int:
    """The task that answers for `name`: its own, or in a plain finetune baseline (whose latest task took
    over the earlier ones' weights and head) the latest."""
    from utils.checkpoint import CheckpointError

    if name in [spec.name for spec in network.tasks]:
        return network.task_id(name)
    if network.mode == "plain":
        return len(network.tasks)
    raise CheckpointError(f"the checkpoint holds no task {name!r}")


def task_data(names: list[str], benchmark: str, data_root: Path, device) -> dict:
    """Each named task of the benchmark on the device (name -> DeviceTaskData), loaded once for the report."""
    spec = get_benchmark(benchmark)
    return {name: spec.load_task(data_root, name).on_device(device, spec.crop_padding, spec.flip) for name in names}


def _arch_options(folder: Path) -> dict:
    """The architecture options a checkpoint's meta records (input shape, outputs: SupSup and the GG
    baselines size LeNet and FC nets to the data), for rebuilding it as it was."""
    from utils.checkpoint import read_meta

    meta = read_meta(folder)
    options = {"input_shape": tuple(meta["input_shape"])} if "input_shape" in meta else {}
    return {**options, "outputs": meta["outputs"]} if "outputs" in meta else options


def checkpoint_network(folder: Path) -> tuple[dict, TaskNetwork]:
    """(payload, network) of the checkpoint in `folder`, built with the options its meta records."""
    from utils.checkpoint import load_checkpoint, network_from_checkpoint

    payload = load_checkpoint(folder)
    return payload, network_from_checkpoint(payload, **_arch_options(folder))


def accuracy_matrix(folders: list[Path], names: list[str], data: dict, device, visit=None) -> metrics.Matrix:
    """R[i][j]: task i's test accuracy with the checkpoint in folders[j] (the one saved after task j), for
    i <= j, None above the diagonal. Each checkpoint is loaded once; `visit(payload, network)` sees each."""
    matrix: metrics.Matrix = [[None] * len(names) for _ in names]
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
    from models import build_network
    from models.network import TaskSpec

    independent = sum(state_bytes(build_network(arch, 1.0, [TaskSpec(spec.name, spec.num_classes, 1.0)],
                                                mode="plain", **arch_options).state_dict()) for spec in tasks)
    return {"model_bytes": kept_bytes, "independent_models_bytes": independent,
            "model_vs_independent": round(kept_bytes / independent, 4)}


def sequential(folders: list[Path], names: list[str], data: dict, device) -> tuple[metrics.Matrix, dict]:
    """R[i][j] with the checkpoint saved after task j (Piggyback's model, a finetune baseline's task
    folder, whose last task is task j); the cost is the last checkpoint's."""
    kept: list[dict] = []
    matrix = accuracy_matrix(folders, names, data, device, lambda payload, network: kept.append(payload))
    specs = [payload["tasks"][-1] for payload in kept]
    return matrix, storage(state_bytes(kept[-1]["model"]), kept[-1]["arch"], specs, **_arch_options(folders[-1]))


def independent(folders: list[Path], names: list[str], data: dict, device) -> tuple[metrics.Matrix, dict]:
    """One model per task learned alone: nothing later touches it, so R[i][j] = R[i][i] for every j >= i
    (each model is evaluated once); the cost is every model kept."""
    matrix: metrics.Matrix = [[None] * len(names) for _ in names]
    kept, specs = 0, []
    for i, (folder, name) in enumerate(zip(folders, names, strict=True)):
        payload, network = checkpoint_network(folder)
        accuracy = task_accuracies(network, {name: data[name]}, device)[name]
        matrix[i][i:] = [accuracy] * (len(names) - i)
        kept += state_bytes(payload["model"])
        specs.append(payload["tasks"][-1])
    return matrix, storage(kept, payload["arch"], specs, **_arch_options(folders[-1]))


def supsup_network(root: Path, names: list[str]):
    """A SupSup run's network with every task's mask: GNu's one sequential model (<root>/model), the last
    task's folder when it holds every task (Transfer, whose tasks start from the earlier ones), or GG's
    one checkpoint per task (<root>/<task>) merged."""
    from utils.checkpoint import read_meta
    from utils.methods.supsup.checkpoints import load, merge

    if (root / "model" / "meta.json").is_file():
        network, _ = load(root / "model")
    elif [task["name"] for task in read_meta(root / names[-1])["tasks"]] == names:
        network, _ = load(root / names[-1])
    else:
        network, _ = merge([root / name for name in names])
    stored = [spec.name for spec in network.tasks]
    if stored[: len(names)] != names:
        from utils.checkpoint import CheckpointError

        raise CheckpointError(f"{root} holds the tasks {stored}, not {names} in that order")
    return network


def supsup(root: Path, names: list[str], data: dict, device, objective: str = "h",
           group: int = 1) -> tuple[metrics.Matrix, dict, list[dict]]:
    """R[i][j] of a SupSup run, task i with its own mask in the network as it was after task j (its first
    j+1 masks: a learned mask never changes, so dropping the later ones restores that network exactly),
    its cost, and the task-inference curve: for every number of tasks k, how often one-shot inference
    (`objective` h or g, images judged in groups of `group`) picks each learned task's own mask, and the
    accuracy with the inferred mask."""
    import torch

    from utils.methods.supsup.checkpoints import first_tasks
    from utils.methods.supsup.infer import infer_tasks

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
    from utils.checkpoint import read_meta

    return read_meta(root / "model" if (root / "model" / "meta.json").is_file() else root / names[0])
