"""The subspace stages: learn a line, curve or simplex of networks (finetune) and evaluate along it (inference).

finetune trains one task with a random point of the subspace per batch plus
beta * cos^2 between a random vertex pair, and saves the checkpoint with the
midpoint's (centroid's) batch-norm statistics. inference sweeps alpha from 0 to 1
in steps of 0.05, recalibrating batch-norm at each point, and writes sweep.csv,
sweep.png and summary.json (midpoint, endpoints, ensembles, ECE at the centre).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from unforget.models import build_network
from unforget.models.layers.subspace import SUBSPACE_MODES
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData, TaskData
from unforget.utils.engine import EpochResult, TrainLoop, cross_entropy, predict
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.stage import StageContext, open_stage
from unforget.utils.methods.subspace.points import (
    PointSampler,
    Subspace,
    centre_coefficients,
    expected_calibration_error,
    mean_squared_cosine,
    recalibrate_bn,
    squared_cosine,
    vertex_gram,
)
from unforget.utils.methods.subspace.report import write_report
from unforget.utils.methods.subspace.settings import SubspaceSettings
from unforget.utils.optim import SGD

MOMENTUM = 0.9
ALPHA_STEPS = 20  # alpha = 0, 0.05, ..., 1
ARCHITECTURES = {1: "subspace_convnet", 3: "subspace_convnet_rgb"}
"""The subspace architecture for images with this many channels."""


def with_label_noise(task: TaskData, fraction: float, seed: int) -> TaskData:
    """The first floor(fraction * N) training images of a fixed permutation get uniformly random labels."""
    generator = torch.Generator().manual_seed(seed)
    count = math.floor(fraction * task.train_labels.numel())
    chosen = torch.randperm(task.train_labels.numel(), generator=generator)[:count]
    labels = task.train_labels.clone()
    labels[chosen] = torch.randint(task.num_classes, (count,), generator=generator)
    return replace(task, train_labels=labels)


def learning_rate(settings: SubspaceSettings, epoch: int) -> float:
    """Linear warm-up over --subspace_warmup_epochs, then cosine decay to 0 (set once per epoch, 0-based)."""
    if epoch < settings.subspace_warmup_epochs:
        return settings.lr * (epoch + 1) / settings.subspace_warmup_epochs
    progress = (epoch - settings.subspace_warmup_epochs) / (settings.epochs - settings.subspace_warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * progress)) * settings.lr


def objective(subspace: Subspace, beta: float, seed: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy plus beta * cos^2 of a random vertex pair, one backward for both."""
    if beta <= 0:
        return cross_entropy
    pairs = random.Random(seed)

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        i, j = pairs.sample(range(subspace.vertices), 2)
        return cross_entropy(logits, labels) + beta * squared_cosine(vertex_gram(subspace.weights), i, j)
    return loss


def load_data(stage: StageContext[SubspaceSettings], label_noise: float = 0.0) -> DeviceTaskData:
    return load_split(stage, label_noise)[0]


def load_split(stage: StageContext[SubspaceSettings],
               label_noise: float = 0.0) -> tuple[DeviceTaskData, DeviceTaskData | None]:
    """The task to train and test on and, under --val_fraction, its validation split (training images held
    out; its batch-norm recalibrates on the images that train)."""
    task = stage.load_task()
    if label_noise > 0:
        task = with_label_noise(task, label_noise, stage.settings.seed)
    trained, held = stage.validation_split(task)
    return stage.on_device(trained), None if held is None else stage.on_device(held)


def evaluate_at(network: TaskNetwork, subspace: Subspace, coeffs: torch.Tensor, data: DeviceTaskData,
                settings: SubspaceSettings) -> torch.Tensor:
    """Test logits at the point `coeffs`, after recalibrating batch-norm there on augmented training data
    (in evaluation-sized batches: the statistics are a per-batch average, so fewer, larger batches suffice)."""
    subspace.set_point(coeffs)
    generator = torch.Generator(device=data.device).manual_seed(settings.seed)
    recalibrate_bn(network, subspace.norms, data.train_batches(settings.val_batch_size, generator))
    return predict(network, data, settings.val_batch_size)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def finetune(stage: StageContext[SubspaceSettings]) -> ExitCode:
    settings, device = stage.settings, stage.device
    data, validation = load_split(stage, settings.subspace_label_noise)
    channels = data.train_images.shape[1]
    arch = settings.arch if settings.arch in ARCHITECTURES.values() else ARCHITECTURES.get(channels)
    if arch is None:
        raise UsageError(f"no subspace architecture for {channels}-channel images")
    network = build_network(arch, settings.network_width_multiplier, mode=settings.layer_mode)
    network.add_task(settings.dataset, data.num_classes)
    network.to(device)
    subspace = Subspace.of(network)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    sampler = PointSampler(network, settings.subspace_layerwise, generator)
    optimizer = SGD(network.parameters(), settings.lr, MOMENTUM, settings.weight_decay)
    loop = TrainLoop(sampler, [optimizer], device, loss=objective(subspace, settings.subspace_beta, settings.seed))

    def schedule(epoch: int) -> dict:
        optimizer.lr = learning_rate(settings, epoch - 1)
        return {"lr": optimizer.lr}

    def vertex_cos2() -> float:
        with torch.no_grad():
            return mean_squared_cosine(vertex_gram(subspace.weights)).item()

    def scalars(epoch: int, result: EpochResult, fields: dict) -> dict:
        return dict(lr=fields.pop("lr"), loss=result.loss, train_acc=result.accuracy, cos2=vertex_cos2(), **fields)

    measured: dict[str, float] = {}

    def finish() -> dict[str, float]:
        """The vertices' cos2, then the accuracy at the subspace's centre on the held-out training images (with
        --val_fraction) and on the test images."""
        measured["cos2"] = vertex_cos2()
        centre_point = centre_coefficients(subspace.kind, subspace.vertices, device)
        held_out = {} if validation is None else {"val_acc": accuracy(
            evaluate_at(network, subspace, centre_point, validation, settings), validation.test_labels)}
        centre = evaluate_at(network, subspace, centre_point, data, settings)
        return {**held_out, "test_acc": accuracy(centre, data.test_labels)}

    done = stage.train(loop, data, f"subspace_finetune_{settings.dataset}", generator=generator, scalars=scalars,
                       schedule=schedule, description=f"subspace {settings.dataset}", finish=finish)
    cos2, centre_acc = measured["cos2"], done.final["test_acc"]
    stage.save(settings.needed(settings.save_folder, "save_folder"), network, arch=arch, meta={
        "benchmark": settings.benchmark, "task": settings.dataset, "stage": "finetune", "subspace": subspace.kind,
        "vertices": subspace.vertices, "layerwise": settings.subspace_layerwise, "beta": settings.subspace_beta,
        "label_noise": settings.subspace_label_noise, "accuracy": round(centre_acc, 4), "cos2": round(cos2, 6)})
    return stage.decide(ExitCode.OK, reason="subspace trained", centre_acc=centre_acc, cos2=cos2)


def sweep(stage: StageContext[SubspaceSettings]) -> ExitCode:
    settings, device = stage.settings, stage.device
    payload = load_checkpoint(Path(settings.needed(settings.load_folder, "load_folder")))
    if payload["mode"] not in SUBSPACE_MODES:
        raise UsageError(f"{settings.load_folder} holds a {payload['mode']} network, not a subspace")
    network = network_from_checkpoint(payload).to(device)
    if network.tasks[0].name != settings.dataset:
        raise UsageError(f"{settings.load_folder} learned {network.tasks[0].name}, not {settings.dataset}")
    subspace = Subspace.of(network)
    data = load_data(stage)
    labels = data.test_labels
    alphas = [k / ALPHA_STEPS for k in range(ALPHA_STEPS + 1)]
    logits = [evaluate_at(network, subspace, subspace.at_alpha(a, device), data, settings) for a in alphas]
    rows = [{"alpha": round(a, 2), "accuracy": round(accuracy(logits[k], labels), 4),
             "paired_alpha": round(1 - a, 2),
             "ensemble_accuracy": round(accuracy(logits[k] + logits[ALPHA_STEPS - k], labels), 4)}
            for k, a in enumerate(alphas)]
    if subspace.kind == "simplex":
        centre_point = centre_coefficients("simplex", subspace.vertices, device)
        centre = evaluate_at(network, subspace, centre_point, data, settings)
    else:
        centre = logits[ALPHA_STEPS // 2]
    gram = vertex_gram(subspace.weights).detach()
    summary = {
        "subspace": subspace.kind, "vertices": subspace.vertices, "task": settings.dataset,
        "midpoint_acc": rows[ALPHA_STEPS // 2]["accuracy"], "endpoint0_acc": rows[0]["accuracy"],
        "endpoint1_acc": rows[-1]["accuracy"], "endpoint_ensemble_acc": rows[0]["ensemble_accuracy"],
        "centre_acc": round(accuracy(centre, labels), 4),
        "centre_ece": round(expected_calibration_error(centre, labels), 4),
        "endpoint_cos2": round(squared_cosine(gram, 0, 1).item(), 6),
        "mean_pair_cos2": round(mean_squared_cosine(gram).item(), 6),
    }
    folder = settings.needed(settings.save_folder or settings.load_folder, "load_folder")  # inference needs it
    paths = write_report(rows, summary, Path(folder),
                         f"{subspace.kind} ({subspace.vertices} vertices) on {settings.dataset}")
    print(json.dumps({**summary, **{k: str(v) for k, v in paths.items()}}))
    stage.log.line(stage="inference", method="subspace", **{k: v for k, v in summary.items() if k != "task"},
             task=settings.dataset)
    return ExitCode.OK


def run(settings: SubspaceSettings, process_start: float) -> ExitCode:
    head = {"stage": settings.mode, "method": "subspace", "task": settings.dataset}
    stage = open_stage(settings, process_start, head=head)
    return finetune(stage) if settings.mode == "finetune" else sweep(stage)
