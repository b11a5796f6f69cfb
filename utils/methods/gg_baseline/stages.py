"""The GG baselines' stages (task given at train and test time; SupSup's Figure 3).

finetune: one task on a new network or on --load_folder's, saved to --save_folder, which the driver
gives each task for itself: the chain of folders keeps every task's network as it was right after
learning it. In `plain` mode (upper bound) the loaded network goes on as the new task, so each folder
is one network for one task, started from the previous task's weights as in the reference. In the
other modes the body is shared: a new task adds its head, batch-norm statistics and (BatchE) its
rank-one vectors, and only the first task trains the body (unless it is random).
inference: every task with its own parts, from the last given folder that holds it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from unforget.models import build_network
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import atomic_csv, atomic_json_dump
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, read_meta
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData, TaskData
from unforget.utils.engine import TrainLoop, evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.gg_baseline.settings import LAYERS, GGBaselineSettings
from unforget.utils.methods.stage import StageContext, open_stage, reseed
from unforget.utils.optim import Adam

CARRIED = ("input_shape", "outputs", "accuracy_after_learning")
"""What a checkpoint's meta passes on to the next task's (the rest, the task list included, is the new one's)."""


def load(folder: Path) -> tuple[TaskNetwork, dict]:
    """A GG-baseline checkpoint as a network, and the part of its meta the next checkpoint carries on."""
    payload, meta = load_checkpoint(folder), read_meta(folder)
    if payload["mode"] not in LAYERS:
        raise UsageError(f"{folder} holds a {payload['mode']} checkpoint, not one of the GG baselines'")
    network = network_from_checkpoint(payload, input_shape=tuple(meta["input_shape"]), outputs=meta["outputs"])
    return network, {key: meta[key] for key in CARRIED}


def split_parameters(network: TaskNetwork, task: int) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """What training `task` changes, as (body weights, the task's own parts: heads, vectors, batch-norm)."""
    body = {id(p) for module in network.body_weights() for p in module.parameters(recurse=False)}
    trainable = network.task_parameters(task)
    return [p for p in trainable if id(p) in body], [p for p in trainable if id(p) not in body]


def _network_for(settings: GGBaselineSettings, num_classes: int, image_shape: tuple[int, ...]) -> tuple:
    """(network with the new task active, its id, meta): --load_folder's network or a fresh one."""
    if settings.load_folder:
        network, meta = load(Path(settings.load_folder))
        if network.mode != settings.gg_layers:
            raise UsageError(f"--gg_layers {settings.gg_layers} cannot continue {settings.load_folder}, "
                             f"a {network.mode} checkpoint")
        if settings.dataset in meta["accuracy_after_learning"]:
            raise UsageError(f"task {settings.dataset} is already learned in {settings.load_folder}")
    else:
        arch = settings.needed(settings.arch, "arch")
        network = build_network(arch, 1.0, mode=settings.gg_layers, input_shape=image_shape, outputs=num_classes)
        meta = {"input_shape": list(image_shape), "outputs": num_classes, "accuracy_after_learning": {}}
    reseed(settings.seed + len(meta["accuracy_after_learning"]) + 1)  # each task's new parts: their own draw
    if network.mode == "plain" and network.tasks:
        try:
            return network, network.take_over(settings.dataset, num_classes), meta
        except ValueError as error:
            raise UsageError(f"the upper bound goes on from the previous task's network: {error}") from error
    return network, network.add_task(settings.dataset, num_classes), meta


def finetune(stage: StageContext[GGBaselineSettings]) -> ExitCode:
    """Learn task --dataset and save the network with it to --save_folder."""
    settings = stage.settings
    task = stage.load_task()
    network, task_id, meta = _network_for(settings, task.num_classes, task.image_shape)
    network.to(stage.device)
    kept, held = stage.validation_split(task)
    data = stage.on_device(kept)
    body, own = split_parameters(network, task_id)
    optimizers = [Adam(own, lr=settings.lr), *([Adam(body, lr=settings.gg_body_lr)] if body else [])]
    rates = [settings.lr, settings.gg_body_lr]
    trained = body + own
    decay = settings.gg_weight_decay

    @torch.no_grad()
    def weight_decay() -> None:
        with_grad = tuple(p for p in trained if p.grad is not None)
        torch._foreach_add_([p.grad for p in trained if p.grad is not None], with_grad, alpha=decay)

    def schedule(epoch: int) -> dict:
        scale = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / settings.epochs))
        for optimizer, rate in zip(optimizers, rates, strict=False):
            optimizer.lr = rate * scale if settings.gg_schedule == "cosine" else rate
        return {"lr": optimizers[0].lr, **({"lr_body": optimizers[1].lr} if body else {})}

    loop = TrainLoop(network, optimizers, stage.device, before_step=weight_decay if decay > 0 else None)
    done = stage.train(loop, data, f"gg_{settings.gg_layers}_{settings.dataset}", schedule=schedule,
                       description=f"{settings.gg_layers} {settings.dataset}",
                       finish=lambda: measured(network, data, held, stage))
    accuracy = done.final["test_acc"]
    meta["accuracy_after_learning"][settings.dataset] = round(accuracy, 4)
    stage.save(settings.needed(settings.save_folder, "save_folder"), network.cpu(), {
        **meta, "benchmark": settings.benchmark, "task": settings.dataset, "stage": "finetune", "seed": settings.seed,
        "accuracy": round(accuracy, 4), "trained_body": bool(body)})
    return stage.decide(ExitCode.OK, val_acc=accuracy, tasks=len(network.tasks), trained_body=bool(body),
                        reason="task learned")


def measured(network: TaskNetwork, data: DeviceTaskData, held: TaskData | None,
             stage: StageContext[GGBaselineSettings]) -> dict[str, float]:
    """The trained task's accuracy by TensorBoard tag: on the held-out training images (with --val_fraction)
    and on the test images."""
    batch = stage.settings.val_batch_size
    validation = {} if held is None else {"val_acc": evaluate(network, stage.on_device(held, augment=False), batch)}
    return {**validation, "test_acc": evaluate(network, data, batch)}


def _holders(folders: list[Path]) -> dict[str, Path]:
    """Task name -> the last folder holding it, in the order the tasks were first seen (from meta.json)."""
    holders: dict[str, Path] = {}
    for folder in folders:
        for spec in read_meta(folder).get("tasks", []):
            holders[spec["name"]] = folder
    return holders


def inference(stage: StageContext[GGBaselineSettings]) -> ExitCode:
    settings = stage.settings
    folders = settings.needed(settings.gg_task_folders, "gg_task_folders")
    holders = _holders([Path(folder) for folder in folders.split(",") if folder])
    if not holders:
        raise UsageError("--gg_task_folders names no checkpoint with a task")
    found: dict[str, dict] = {}
    modes = set()
    for folder in dict.fromkeys(holders.values()):  # each checkpoint loaded once
        network, meta = load(folder)
        modes.add(network.mode)
        network.to(stage.device)
        for name in [name for name, holder in holders.items() if holder == folder]:
            network.set_task(network.task_id(name))
            data = stage.task_data(name)
            found[name] = {"num_tasks_learned": len(holders), "task": name,
                           "accuracy_after_learning": meta["accuracy_after_learning"].get(name),
                           "accuracy_final": round(evaluate(network, data, settings.val_batch_size), 4)}
    rows = [found[name] for name in holders]
    for row in rows:
        print(json.dumps(row), flush=True)
        stage.log.line(stage="gg_inference", **{k: v for k, v in row.items() if v is not None})
    averages = {key: round(sum(row[key] for row in rows) / len(rows), 4)
                for key in ("accuracy_after_learning", "accuracy_final") if all(row[key] is not None for row in rows)}
    if settings.gg_results:
        atomic_csv(Path(settings.gg_results), [*rows, {"num_tasks_learned": len(rows), "task": "average",
                                                        "accuracy_after_learning": None, **averages}])
    if settings.gg_summary:
        atomic_json_dump({"benchmark": settings.benchmark, "method": "gg_baseline", "layers": sorted(modes),
                          "num_tasks_learned": len(rows), "tasks": rows,
                          **{f"average_{key}": value for key, value in averages.items()}}, Path(settings.gg_summary))
    return ExitCode.OK


def run(settings: GGBaselineSettings, process_start: float) -> ExitCode:
    if settings.mode == "finetune":
        head = {"stage": "gg_finetune", "layers": settings.gg_layers, "task": settings.dataset}
        return finetune(open_stage(settings, process_start, head=head))
    return inference(open_stage(settings, seed=False))
