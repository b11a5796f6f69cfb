"""The one stage of EWC and LwF: learn task --dataset on --load_folder's network (or a fresh one) with a new
head, and save the network with every task so far to --save_folder, which the driver gives each task for
itself: the chain of folders keeps the network as it was after each task, which the report's accuracy matrix
reads. EWC also leaves its terms there (ewc.pth) for the next task; LwF needs nothing but the network, whose
old heads' outputs it records (a frozen copy computes them on each batch's images as they are augmented)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from unforget.models import build_network, input_options
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, read_meta
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData, TaskData
from unforget.utils.engine import TrainLoop, evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.regularised import ewc, lwf
from unforget.utils.methods.regularised.settings import EWCSettings, LwFSettings, RegularisedSettings
from unforget.utils.methods.stage import StageContext, open_stage, reseed
from unforget.utils.optim import SGD

Measure = Callable[[], dict[str, float]]
"""a trained network's accuracies by TensorBoard tag"""
Stage = StageContext[RegularisedSettings]


def _network(settings: RegularisedSettings, task: TaskData) -> tuple[TaskNetwork, dict]:
    """--load_folder's network and the meta it carries on (the accuracies after learning), or a fresh one."""
    arch = settings.needed(settings.arch, "arch")
    if not settings.load_folder:
        network = build_network(arch, 1.0, mode=settings.LAYER_MODE, **input_options(arch, task.image_shape))
        return network, {}
    folder = Path(settings.load_folder)
    payload, meta = load_checkpoint(folder), read_meta(folder)
    if meta.get("method") != settings.method:
        raise UsageError(f"{folder} holds a {meta.get('method', payload['mode'])} checkpoint: --method "
                         f"{settings.method} continues only its own")
    if payload["arch"] != arch:
        raise UsageError(f"--arch {arch} but {folder} holds a {payload['arch']}")
    network = network_from_checkpoint(payload, **input_options(arch, task.image_shape))
    if settings.dataset in [spec.name for spec in network.tasks]:
        raise UsageError(f"task {settings.dataset} is already learned in {folder}")
    return network, {"accuracy_after_learning": meta.get("accuracy_after_learning", {})}


def _train(stage: Stage, network: TaskNetwork, data: DeviceTaskData, parameters: list[torch.nn.Parameter],
           extra_loss: Callable[[torch.Tensor], torch.Tensor] | None, board_run: str, step_schedule: bool,
           finish: Measure | None = None) -> None:
    """--epochs of SGD (Nesterov) over `parameters`, with weight decay on the shared body and the method's
    `extra_loss`; `step_schedule`: --lr x0.1 at 50% and again at 80% of the epochs (else constant); `finish`
    measures the trained network for the run's last step (val_acc, test_acc)."""
    settings = stage.settings
    sgd = SGD(parameters, lr=settings.lr, momentum=settings.reg_momentum, nesterov=settings.reg_momentum > 0)
    body = network.body_weights()
    trained = {id(p) for p in parameters}
    decayed = [module for module in body if any(id(p) in trained for p in module.parameters(recurse=False))]

    def decay() -> None:
        for module in decayed:
            module.add_weight_decay(settings.reg_weight_decay)

    def schedule(epoch: int) -> dict:
        progress = (epoch - 1) / settings.epochs
        if step_schedule:
            sgd.lr = settings.lr * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.8 else 1.0)
        return {"lr": sgd.lr}

    loop = TrainLoop(network, [sgd], stage.device, before_step=decay if decayed and settings.reg_weight_decay else None,
                     extra_loss=extra_loss)
    stage.train(loop, data, board_run, schedule=schedule, finish=finish,
                description=f"{settings.method} {settings.dataset}")


def _learn_ewc(stage: Stage, settings: EWCSettings, network: TaskNetwork, task: int,
               data: DeviceTaskData, finish: Measure) -> list[ewc.Term]:
    """Train with the old tasks' penalty, then add this task's term; returns the terms to save."""
    parameters = ewc.body_parameters(network)
    terms = ewc.load_terms(Path(settings.load_folder), parameters, settings.ewc_online) if settings.load_folder else []
    terms = [term.to(stage.device) for term in terms]
    extra = None
    if terms and settings.ewc_lambda > 0:
        def extra(images: torch.Tensor) -> torch.Tensor:
            return ewc.penalty(parameters, terms, settings.ewc_lambda)
    _train(stage, network, data, network.task_parameters(task), extra, f"ewc_{settings.dataset}", True, finish)
    count = data.train_labels.numel()
    chosen = torch.arange(count)
    if settings.ewc_fisher_samples is not None and settings.ewc_fisher_samples < count:  # a seeded sample
        chosen = torch.randperm(count, generator=torch.Generator().manual_seed(settings.seed))
        chosen = chosen[:settings.ewc_fisher_samples]
    chosen = chosen.to(data.train_labels.device)
    fisher = ewc.diagonal_fisher(network, parameters, data.normalise(data.train_images[chosen]),
                                 data.train_labels[chosen].to(stage.device))
    new = ewc.Term({name: p.detach().clone() for name, p in parameters.items()}, fisher)
    return ewc.consolidated(terms, new, settings.ewc_online, settings.ewc_gamma)


def _learn_lwf(stage: Stage, settings: LwFSettings, network: TaskNetwork, teacher: TaskNetwork | None, task: int,
               data: DeviceTaskData, finish: Measure) -> None:
    """The warm-up (the new head alone), then the new task's loss plus lambda_o times the distillation of
    every old head's outputs, training the body, the new task's parts and the old heads together."""
    old = list(range(1, task))
    if teacher is None or not old:
        _train(stage, network, data, network.task_parameters(task), None, f"lwf_{settings.dataset}", True, finish)
        return
    if settings.lwf_warmup_epochs:
        warmup = dataclasses.replace(stage, settings=settings.replace(epochs=settings.lwf_warmup_epochs),
                                     head={**stage.head, "stage": "lwf_warmup"})
        _train(warmup, network, data, lwf.heads(network, [task]), None, f"lwf_warmup_{settings.dataset}", False)
    frozen = teacher.eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)

    def distill(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            recorded = lwf.old_task_logits(frozen, images, old)
        current = lwf.old_task_logits(network, images, old)
        losses = [lwf.distillation(now, then, settings.lwf_temperature) for now, then in zip(current, recorded,
                                                                                              strict=True)]
        return settings.lwf_lambda * torch.stack(losses).sum()

    _train(stage, network, data, [*network.task_parameters(task), *lwf.heads(network, old)],
           distill if settings.lwf_lambda > 0 else None, f"lwf_{settings.dataset}", True, finish)


def finetune(stage: Stage) -> ExitCode:
    """Learn task --dataset with a new head and save the network with every task so far."""
    settings = stage.settings
    task_data = stage.load_task()
    network, meta = _network(settings, task_data)
    learned = meta.get("accuracy_after_learning", {})
    teacher = copy.deepcopy(network).to(stage.device) if isinstance(settings, LwFSettings) and network.tasks else None
    reseed(settings.seed + len(network.tasks) + 1)  # the new head: its own draw for each task
    task = network.add_task(settings.dataset, task_data.num_classes)
    network.to(stage.device)
    trained, held = stage.validation_split(task_data)
    data = stage.on_device(trained)
    validation = stage.on_device(held, augment=False) if held is not None else None

    def measure() -> dict[str, float]:
        """test_acc on the test images, and val_acc on the held-out training images when --val_fraction asks."""
        found = {"test_acc": evaluate(network, data, settings.val_batch_size)}
        return found if validation is None else {"val_acc": evaluate(network, validation, settings.val_batch_size),
                                                 **found}

    terms = None
    if isinstance(settings, EWCSettings):
        terms = _learn_ewc(stage, settings, network, task, data, measure)
    elif isinstance(settings, LwFSettings):
        _learn_lwf(stage, settings, network, teacher, task, data, measure)
    if not all(torch.isfinite(p).all() for p in network.parameters()):
        raise UsageError(f"training {settings.dataset} diverged (weights not finite): lower --lr, or the method's "
                         "lambda, whose penalty's stiffness times --lr must stay small")
    network.set_task(task)
    accuracy = round(evaluate(network, data, settings.val_batch_size), 4)
    folder = Path(settings.needed(settings.save_folder, "save_folder"))
    names = [spec.name for spec in network.tasks]
    if isinstance(settings, EWCSettings) and terms is not None:  # first: a folder with meta.json has its terms
        ewc.save_terms(folder, terms, settings.ewc_online, names)
    stage.save(folder, network.cpu(), {
        "benchmark": settings.benchmark, "method": settings.method, "task": settings.dataset, "stage": "finetune",
        "seed": settings.seed, "accuracy": accuracy, "accuracy_after_learning": {**learned, settings.dataset: accuracy},
        **input_options(settings.needed(settings.arch, "arch"), task_data.image_shape)})
    return stage.decide(ExitCode.OK, test_acc=accuracy, tasks=len(names), reason="task learned")


def run(settings: RegularisedSettings, process_start: float) -> ExitCode:
    return finetune(open_stage(settings, process_start,
                               head={"stage": f"{settings.method}_finetune", "task": settings.dataset}))
