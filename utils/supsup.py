"""SupSup (Supermasks in Superposition) as a method of `main_normal.py`.

finetune: learn one task's supermask over the fixed signed-constant weights (a new network, or a
task added to --load_folder), freeze it into the 1-bit mask stack and save the checkpoint.
inference: evaluate tasks with their own masks (GG) or with the task inferred by superposing the
masks (GNu: correct only when both the task and the class are right), append CSV rows and write
the run summary. In GG, independent single-task runs are merged here (--supsup_task_folders):
they share the seed, hence the weights, which the merge checks.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import torch

from models import ARCHITECTURES
from models.network import TaskNetwork
from models.supsup_parts import mask_parameters, set_density, store_masks, supsup_layers
from utils.atomic import atomic_json_dump
from utils.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from utils.cli import UsageError
from utils.data.registry import Benchmark, get_benchmark
from utils.data.tasks import DeviceTaskData
from utils.device import resolve_device
from utils.engine import evaluate, predict, train_epoch
from utils.exit_codes import ExitCode
from utils.logs import RunLog
from utils.optim import Adam, RMSprop
from utils.supsup_infer import infer_tasks

SUPSUP_ARCHS = ("lenet_300_100", "fc_1024_1024", "gem_resnet18")


def build(arch: str, input_shape: tuple[int, ...], outputs: int) -> TaskNetwork:
    if arch not in SUPSUP_ARCHS:
        raise UsageError(f"--method supsup needs one of the architectures {', '.join(SUPSUP_ARCHS)}, not {arch}")
    return ARCHITECTURES[arch](mode="supsup", input_shape=input_shape, outputs=outputs)


def load(folder: Path) -> tuple[TaskNetwork, dict]:
    """A SupSup checkpoint as a network with every task's mask stored, and its meta."""
    payload, meta = load_checkpoint(folder), read_meta(folder)
    if payload["mode"] != "supsup":
        raise UsageError(f"{folder} holds a {payload['mode']} checkpoint, not a supsup one")
    network = build(payload["arch"], tuple(meta["input_shape"]), meta["outputs"])
    for spec in payload["tasks"]:
        network.add_task(spec.name, spec.num_classes)
    store_masks(network)
    try:
        network.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{folder}: checkpoint does not match {payload['arch']} ({error})") from error
    return network, meta


def merge(folders: list[Path]) -> tuple[TaskNetwork, dict]:
    """One network holding the tasks of several checkpoints, each with its masks and batch-norm."""
    parts = [load(folder) for folder in folders]
    network, meta = load(folders[0])
    for network_part, _ in parts[1:]:
        for spec in network_part.tasks:
            network.add_task(spec.name, spec.num_classes)
    store_masks(network)
    offset = 0
    for folder, (part, part_meta) in zip(folders, parts, strict=True):
        for ours, theirs in zip(supsup_layers(network), supsup_layers(part), strict=True):
            if not torch.equal(ours.weight, theirs.weight):
                raise UsageError(f"{folder} was trained on other fixed weights (another --seed or arch)")
            ours.stack[offset:offset + theirs.num_tasks] = theirs.stack
        for ours, theirs in zip(_task_norms(network), _task_norms(part), strict=True):
            for index, norm in enumerate(theirs.per_task):
                ours.per_task[offset + index].load_state_dict(norm.state_dict())
        offset += len(part.tasks)
        meta["accuracy_after_learning"].update(part_meta["accuracy_after_learning"])
    return network, meta


def _task_norms(network: TaskNetwork) -> list[torch.nn.Module]:
    return [m for m in network.modules() if hasattr(m, "per_task") and m is not getattr(network, "heads", None)]


def _device_data(benchmark: Benchmark, args: argparse.Namespace, name: str, device: torch.device) -> DeviceTaskData:
    task = benchmark.load_task(Path(args.data_root), name)
    return DeviceTaskData(task, device, benchmark.crop_padding, benchmark.flip)


def _optimizer(args: argparse.Namespace, params: list[torch.nn.Parameter]) -> Adam | RMSprop:
    return Adam(params, lr=args.lr) if args.supsup_optimizer == "adam" else RMSprop(params, lr=args.lr)


def finetune(args: argparse.Namespace, log: RunLog) -> ExitCode:
    """Learn task --dataset's mask and save the network with it to --save_folder."""
    if not args.save_folder:
        raise UsageError("--method supsup --mode finetune needs --save_folder")
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    benchmark = get_benchmark(args.benchmark)
    task = benchmark.load_task(Path(args.data_root), args.dataset)
    if args.load_folder:
        network, meta = load(Path(args.load_folder))
        if args.dataset in [spec.name for spec in network.tasks]:
            raise UsageError(f"task {args.dataset} is already learned in {args.load_folder}")
    else:
        outputs = args.supsup_output_size or task.num_classes
        network = build(args.arch, tuple(task.train_images.shape[1:]), outputs)
        meta = {"input_shape": list(task.train_images.shape[1:]), "outputs": outputs, "accuracy_after_learning": {}}
    torch.manual_seed(args.seed + len(network.tasks) + 1)  # each task's scores start from their own draw
    network.add_task(args.dataset, task.num_classes)
    set_density(network, args.supsup_density if args.supsup_masks == "topk" else None, args.supsup_er)
    network.to(device)
    data = DeviceTaskData(task, device, benchmark.crop_padding, benchmark.flip)
    scores = mask_parameters(network)
    optimizer = _optimizer(args, scores)
    decay = args.supsup_weight_decay

    @torch.no_grad()
    def weight_decay() -> None:
        torch._foreach_add_([s.grad for s in scores], scores, alpha=decay)

    generator = torch.Generator(device=device).manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        if args.supsup_schedule == "cosine":
            optimizer.lr = 0.5 * args.lr * (1 + math.cos(math.pi * (epoch - 1) / args.epochs))
        result = train_epoch(network, data, args.batch_size, generator, [optimizer],
                             before_step=weight_decay if decay > 0 else None)
        log.line(stage="supsup_finetune", task=args.dataset, epoch=f"{epoch}/{args.epochs}", loss=result.loss,
                 train_acc=result.accuracy)
    store_masks(network)
    accuracy = evaluate(network, data, args.val_batch_size)
    meta["accuracy_after_learning"][args.dataset] = round(accuracy, 4)
    densities = [round(layer.mask(layer.num_tasks).mean().item(), 4) for layer in supsup_layers(network)]
    save_checkpoint(Path(args.save_folder), network.cpu(), args.arch, {
        **meta, "benchmark": args.benchmark, "task": args.dataset, "stage": "finetune", "seed": args.seed,
        "accuracy": round(accuracy, 4), "densities": densities})
    log.decision(stage="supsup_finetune", task=args.dataset, exit=0, state="OK", val_acc=accuracy,
                 tasks=len(network.tasks), reason="mask stored")
    return ExitCode.OK


def _evaluate_task(network: TaskNetwork, data: DeviceTaskData, task: int, args: argparse.Namespace) -> dict:
    """The task's accuracy with its own mask and, unless GG, task-inference and inferred accuracy."""
    network.set_task(task)
    logits = predict(network, data, args.val_batch_size)
    right_class = logits.argmax(1) == data.test_labels
    row = {"accuracy_final": round(right_class.float().mean().item(), 4)}
    if args.supsup_adaptor != "gt":
        images = torch.cat([images for images, _ in data.test_batches(args.val_batch_size)])
        inferred = infer_tasks(network, images, args.supsup_adaptor, args.supsup_objective,
                               args.supsup_real_neurons, args.supsup_infer_batch)
        right_task = inferred == task - 1
        row["task_inference_accuracy"] = round(right_task.float().mean().item(), 4)
        row["accuracy_inferred_task"] = round((right_task & right_class).float().mean().item(), 4)
    return row


def _append_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def inference(args: argparse.Namespace, log: RunLog) -> ExitCode:
    if args.supsup_task_folders:
        network, meta = merge([Path(folder) for folder in args.supsup_task_folders.split(",") if folder])
    elif args.load_folder:
        network, meta = load(Path(args.load_folder))
    else:
        raise UsageError("--method supsup --mode inference needs --load_folder or --supsup_task_folders")
    if args.supsup_infer_batch < 1:
        raise UsageError("--supsup_infer_batch must be at least 1")
    device = resolve_device(args.device)
    network.to(device)
    benchmark = get_benchmark(args.benchmark)
    tasks = network.tasks if args.supsup_eval == "all" else network.tasks[-1:]
    rows = []
    for spec in tasks:
        task = network.task_id(spec.name)
        row = {"num_tasks_learned": len(network.tasks), "task": spec.name,
               "accuracy_after_learning": meta["accuracy_after_learning"].get(spec.name)}
        row.update(_evaluate_task(network, _device_data(benchmark, args, spec.name, device), task, args))
        rows.append(row)
        print(json.dumps(row), flush=True)
        log.line(stage="supsup_inference", adaptor=args.supsup_adaptor, objective=args.supsup_objective,
                 **{k: v for k, v in row.items() if v is not None})
    averages = {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]
                if key not in ("num_tasks_learned", "task") and all(r[key] is not None for r in rows)}
    if args.supsup_results:
        _append_csv(Path(args.supsup_results), [*rows, {"num_tasks_learned": len(network.tasks), "task": "average",
                                                        "accuracy_after_learning": None, **averages}])
    if args.supsup_summary:
        atomic_json_dump({"benchmark": args.benchmark, "method": "supsup", "adaptor": args.supsup_adaptor,
                          "objective": args.supsup_objective, "infer_batch": args.supsup_infer_batch,
                          "num_tasks_learned": len(network.tasks), "tasks": rows,
                          **{f"average_{key}": value for key, value in averages.items()}},
                         Path(args.supsup_summary))
    return ExitCode.OK


def run(args: argparse.Namespace) -> ExitCode:
    log = RunLog(args.log_path)
    if args.mode == "finetune":
        return finetune(args, log)
    if args.mode == "inference":
        return inference(args, log)
    raise UsageError(f"--method supsup has no {args.mode} stage (finetune learns a mask, inference evaluates)")
