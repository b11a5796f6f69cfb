"""SupSup's stages.

finetune: learn one task's supermask over the fixed signed-constant weights (a new network, or a
task added to --load_folder), freeze it into the 1-bit mask stack and save the checkpoint.
inference: evaluate tasks with their own masks (GG) or with the task inferred by superposing the
masks (GNu: correct only when both the task and the class are right), append CSV rows and write
the run summary. In GG, independent single-task runs are merged here (--supsup_task_folders):
they share the seed, hence the weights, which the merge checks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import torch

from unforget.models import build_network
from unforget.models.layers.supsup import set_density, store_masks, supsup_layers
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import atomic_json_dump, atomic_write
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import TrainLoop, evaluate, predict
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.stage import StageContext, open_stage, reseed
from unforget.utils.methods.supsup import transfer
from unforget.utils.methods.supsup.checkpoints import first_tasks, load, merge
from unforget.utils.methods.supsup.infer import infer_tasks
from unforget.utils.methods.supsup.results import add_csv_rows
from unforget.utils.methods.supsup.settings import SupSupSettings, too_few_outputs
from unforget.utils.optim import Adam, RMSprop


def _optimizer(settings: SupSupSettings, params: list[torch.nn.Parameter]) -> Adam | RMSprop:
    return Adam(params, lr=settings.lr) if settings.supsup_optimizer == "adam" else RMSprop(params, lr=settings.lr)


def finetune(stage: StageContext[SupSupSettings]) -> ExitCode:
    """Learn task --dataset's mask and save the network with it to --save_folder."""
    settings = stage.settings
    task = stage.load_task()
    if settings.load_folder:
        network, meta = load(Path(settings.load_folder))
        names = [spec.name for spec in network.tasks]
        if names[-1] == settings.dataset and _same_folder(settings.load_folder, settings.save_folder):
            if settings.dataset in meta["accuracy_after_learning"]:
                return stage.decide(ExitCode.OK, tasks=len(names),
                                    reason="already learned and saved here (a rerun after an interruption)")
            network, names = first_tasks(network, len(names) - 1), names[:-1]  # killed before its meta: relearn
        if settings.dataset in names:
            raise UsageError(f"task {settings.dataset} is already learned in {settings.load_folder}")
    else:
        outputs = settings.supsup_output_size or task.num_classes
        arch = settings.needed(settings.arch, "arch")
        network = build_network(arch, 1.0, mode="supsup", input_shape=task.image_shape, outputs=outputs)
        meta = {"input_shape": list(task.image_shape), "outputs": outputs, "accuracy_after_learning": {}}
    too_few_outputs(settings.dataset, task.num_classes, meta["outputs"])
    reseed(settings.seed + len(network.tasks) + 1)  # each task's scores start from their own draw
    task_id = network.add_task(settings.dataset, task.num_classes)
    set_density(network, settings.supsup_density if settings.supsup_masks == "topk" else None, settings.supsup_er)
    if settings.supsup_transfer:
        transfer.start_from_mean(network, task_id, settings.load_folder)
    network.to(stage.device)
    trained, held = stage.validation_split(task)
    data = stage.on_device(trained)
    scores = network.task_parameters(task_id)
    optimizer = _optimizer(settings, scores)
    decay = settings.supsup_weight_decay

    @torch.no_grad()
    def weight_decay() -> None:
        grads = [s.grad for s in scores if s.grad is not None]  # all of them: every live score is in the graph
        torch._foreach_add_(grads, tuple(scores), alpha=decay)

    def schedule(epoch: int) -> dict:
        if settings.supsup_schedule == "cosine":
            optimizer.lr = 0.5 * settings.lr * (1 + math.cos(math.pi * (epoch - 1) / settings.epochs))
        return {"lr": optimizer.lr}

    loop = TrainLoop(network, [optimizer], stage.device, before_step=weight_decay if decay > 0 else None)
    def finish() -> dict[str, float]:
        if settings.supsup_transfer:
            transfer.save_sum(network, task_id, settings.load_folder,
                              settings.needed(settings.save_folder, "save_folder"))
        store_masks(network)
        validation = {} if held is None else {
            "val_acc": evaluate(network, stage.on_device(held, augment=False), settings.val_batch_size)}
        return {**validation, "test_acc": evaluate(network, data, settings.val_batch_size)}

    done = stage.train(loop, data, f"supsup_finetune_{settings.dataset}",  # one log may hold every task (GNu)
                       schedule=schedule, description=f"supsup {settings.dataset}", finish=finish)
    accuracy = done.final["test_acc"]
    meta["accuracy_after_learning"][settings.dataset] = round(accuracy, 4)
    densities = [round(layer.mask(layer.num_tasks).mean().item(), 4) for layer in supsup_layers(network)]
    stage.save(settings.needed(settings.save_folder, "save_folder"), network.cpu(), {
        **meta, "benchmark": settings.benchmark, "task": settings.dataset, "stage": "finetune", "seed": settings.seed,
        "accuracy": round(accuracy, 4), "densities": densities})
    return stage.decide(ExitCode.OK, val_acc=accuracy, tasks=len(network.tasks), reason="mask stored")


def _evaluate_task(network: TaskNetwork, data: DeviceTaskData, task: int, settings: SupSupSettings) -> dict:
    """The task's accuracy with its own mask and, unless GG, task-inference accuracy and the accuracy with the
    inferred task: GNu (unshared labels) counts an image right when its task and class are, GNs (shared
    labels) when the class predicted with the inferred task's mask is."""
    network.set_task(task)
    logits = predict(network, data, settings.val_batch_size)
    right_class = logits.argmax(1) == data.test_labels
    row = {"accuracy_final": round(right_class.float().mean().item(), 4)}
    if settings.supsup_adaptor != "gt":
        images = torch.cat([images for images, _ in data.test_batches(settings.val_batch_size)])
        inferred = infer_tasks(network, images, settings.supsup_adaptor, settings.supsup_objective,
                               settings.supsup_real_neurons, settings.supsup_infer_batch)
        right_task = inferred == task - 1
        if settings.supsup_labels == "shared":
            right_class = _predict_with_tasks(network, images, inferred, settings.val_batch_size) == data.test_labels
        else:
            right_class &= right_task
        row["task_inference_accuracy"] = round(right_task.float().mean().item(), 4)
        row["accuracy_inferred_task"] = round(right_class.float().mean().item(), 4)
    return row


@torch.no_grad()
def _predict_with_tasks(network: TaskNetwork, images: torch.Tensor, tasks: torch.Tensor, batch: int) -> torch.Tensor:
    """Each image's predicted class with the mask of its own (0-based) task in `tasks`."""
    network.eval()
    predictions = torch.empty(len(images), dtype=torch.long, device=images.device)
    for task in tasks.unique().tolist():
        chosen = (tasks == task).nonzero().flatten()
        network.set_task(task + 1)
        for part in chosen.split(batch):
            predictions[part] = network(images[part]).argmax(1)
    return predictions


def _same_folder(first: str, second: str | None) -> bool:
    return second is not None and Path(first).resolve() == Path(second).resolve()


ADAPT_HEADER = ("Date Finished", "Name", "Task", "Num Tasks Learned", "Current Val", "Adapt Val")


def _write_adapt_results(path: Path, rows: list[dict], settings: SupSupSettings) -> None:
    """One evaluation's rows in the reference's adapt_results.csv format (written whole, atomically): per task
    learned so far, its accuracy right after learning (Current Val) and now, with the adaptor (Adapt Val)."""
    now = time.strftime("%m-%d-%y_%H:%M:%S")
    adapt_key = "accuracy_final" if settings.supsup_adaptor == "gt" else "accuracy_inferred_task"
    name = (f"supsup~benchmark={settings.benchmark}~labels={settings.supsup_labels}~adaptor={settings.supsup_adaptor}"
            f"~objective={settings.supsup_objective}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ADAPT_HEADER)
    for number, row in enumerate(rows):
        learned = row["num_tasks_learned"]
        current = row["accuracy_after_learning"]
        writer.writerow([now, f"{name}~task={row['task']}~numtaskslearned={learned}~tasknumber={number}", row["task"],
                         learned, "" if current is None else f"{current:.4f}", f"{row[adapt_key]:.4f}"])
    atomic_write(path, lambda file: file.write(buffer.getvalue()), binary=False)


def inference(stage: StageContext[SupSupSettings]) -> ExitCode:
    settings = stage.settings
    if settings.supsup_task_folders:
        network, meta = merge([Path(folder) for folder in settings.supsup_task_folders.split(",") if folder])
    else:
        network, meta = load(Path(settings.needed(settings.load_folder, "load_folder")))
    if settings.supsup_tasks:
        network = first_tasks(network, settings.supsup_tasks)
    network.to(stage.device)
    tasks = network.tasks if settings.supsup_eval == "all" else network.tasks[-1:]
    rows = []
    for spec in tasks:
        task = network.task_id(spec.name)
        row = {"num_tasks_learned": len(network.tasks), "task": spec.name,
               "accuracy_after_learning": meta["accuracy_after_learning"].get(spec.name)}
        row.update(_evaluate_task(network, stage.task_data(spec.name), task, settings))
        rows.append(row)
        print(json.dumps(row), flush=True)
        stage.log.line(stage="supsup_inference", adaptor=settings.supsup_adaptor, objective=settings.supsup_objective,
                 **{k: v for k, v in row.items() if v is not None})
    averages = {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]
                if key not in ("num_tasks_learned", "task") and all(r[key] is not None for r in rows)}
    if settings.supsup_results:
        average = {"num_tasks_learned": len(network.tasks), "task": "average", "accuracy_after_learning": None,
                   **averages}
        add_csv_rows(Path(settings.supsup_results), [*rows, average])
    if settings.supsup_adapt_results:
        _write_adapt_results(Path(settings.supsup_adapt_results), rows, settings)
    if settings.supsup_summary:
        atomic_json_dump({"benchmark": settings.benchmark, "method": "supsup", "adaptor": settings.supsup_adaptor,
                          "labels": settings.supsup_labels,
                          "objective": settings.supsup_objective, "infer_batch": settings.supsup_infer_batch,
                          "num_tasks_learned": len(network.tasks), "tasks": rows,
                          **{f"average_{key}": value for key, value in averages.items()}},
                         Path(settings.supsup_summary))
    return ExitCode.OK


def run(settings: SupSupSettings, process_start: float) -> ExitCode:
    if settings.supsup_scenario != "given":  # NNs and HopSupSup: a stream of tasks in one stage
        from unforget.utils.methods.supsup.scenarios import run_scenario

        return run_scenario(settings)
    if settings.mode == "finetune":
        head = {"stage": "supsup_finetune", "task": settings.dataset}
        return finetune(open_stage(settings, process_start, head=head))
    return inference(open_stage(settings, seed=False))
