"""The subspace method: learn a line, curve or simplex of networks (finetune) and evaluate along it (inference).

finetune trains one task with a random point of the subspace per batch plus
beta * cos^2 between a random vertex pair, and saves the checkpoint with the
midpoint's (centroid's) batch-norm statistics. inference sweeps alpha from 0 to 1
in steps of 0.05, recalibrating batch-norm at each point, and writes sweep.csv,
sweep.png and summary.json (midpoint, endpoints, ensembles, ECE at the centre).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from models import build_network
from models.layers import SUBSPACE_MODES
from models.network import TaskNetwork
from models.subspace_nets import SUBSPACE_ARCHS
from utils.checkpoint import load_checkpoint, network_from_checkpoint, save_checkpoint
from utils.cli import UsageError
from utils.data.registry import get_benchmark
from utils.data.tasks import DeviceTaskData, TaskData
from utils.device import resolve_device
from utils.engine import predict, train_epoch
from utils.exit_codes import ExitCode
from utils.logs import RunLog
from utils.optim import SGD
from utils.subspace import (
    PointSampler,
    Subspace,
    centre_coefficients,
    expected_calibration_error,
    mean_squared_cosine,
    recalibrate_bn,
    squared_cosine,
    vertex_gram,
)
from utils.subspace_report import write_report

MOMENTUM = 0.9
ALPHA_STEPS = 20  # alpha = 0, 0.05, ..., 1


def check_flags(args: argparse.Namespace) -> None:
    if args.mode not in ("finetune", "inference"):
        raise UsageError(f"--method subspace has no {args.mode} stage (use finetune or inference)")
    needed = "save_folder" if args.mode == "finetune" else "load_folder"
    if not getattr(args, needed):
        raise UsageError(f"--method subspace --mode {args.mode} needs --{needed}")
    if not 2 <= args.subspace_vertices <= 9:
        raise UsageError(f"--subspace_vertices must be between 2 and 9, got {args.subspace_vertices}")
    if not 0.0 <= args.subspace_label_noise < 1.0:
        raise UsageError(f"--subspace_label_noise must be in [0, 1), got {args.subspace_label_noise}")
    if not 0 <= args.subspace_warmup_epochs < args.epochs:
        raise UsageError(f"--subspace_warmup_epochs must be in [0, --epochs), got {args.subspace_warmup_epochs}")


def weight_mode(args: argparse.Namespace) -> str:
    return f"simplex{args.subspace_vertices}" if args.subspace == "simplex" else args.subspace


def with_label_noise(task: TaskData, fraction: float, seed: int) -> TaskData:
    """The first floor(fraction * N) training images of a fixed permutation get uniformly random labels."""
    generator = torch.Generator().manual_seed(seed)
    count = math.floor(fraction * task.train_labels.numel())
    chosen = torch.randperm(task.train_labels.numel(), generator=generator)[:count]
    labels = task.train_labels.clone()
    labels[chosen] = torch.randint(task.num_classes, (count,), generator=generator)
    return replace(task, train_labels=labels)


def learning_rate(args: argparse.Namespace, epoch: int) -> float:
    """Linear warm-up over --subspace_warmup_epochs, then cosine decay to 0 (set once per epoch, 0-based)."""
    if epoch < args.subspace_warmup_epochs:
        return args.lr * (epoch + 1) / args.subspace_warmup_epochs
    progress = (epoch - args.subspace_warmup_epochs) / (args.epochs - args.subspace_warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * progress)) * args.lr


def regulariser(subspace: Subspace, beta: float, seed: int) -> Callable[[], None] | None:
    """After the loss's backward: add the gradient of beta * cos^2 of a random vertex pair."""
    if beta <= 0:
        return None
    pairs = random.Random(seed)

    def backward() -> None:
        i, j = pairs.sample(range(subspace.vertices), 2)
        (beta * squared_cosine(vertex_gram(subspace.weights), i, j)).backward()
    return backward


def load_data(args: argparse.Namespace, device: torch.device, label_noise: float = 0.0) -> DeviceTaskData:
    benchmark = get_benchmark(args.benchmark)
    task = benchmark.load_task(Path(args.data_root), args.dataset)
    if label_noise > 0:
        task = with_label_noise(task, label_noise, args.seed)
    return DeviceTaskData(task, device, benchmark.crop_padding, benchmark.flip)


def evaluate_at(network: TaskNetwork, subspace: Subspace, coeffs: torch.Tensor, data: DeviceTaskData,
                args: argparse.Namespace) -> torch.Tensor:
    """Test logits at the point `coeffs`, after recalibrating batch-norm there on augmented training data
    (in evaluation-sized batches: the statistics are a per-batch average, so fewer, larger batches suffice)."""
    subspace.set_point(coeffs)
    generator = torch.Generator(device=data.device).manual_seed(args.seed)
    recalibrate_bn(network, subspace.norms, data.train_batches(args.val_batch_size, generator))
    return predict(network, data, args.val_batch_size)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def finetune(args: argparse.Namespace, log: RunLog, device: torch.device) -> ExitCode:
    data = load_data(args, device, args.subspace_label_noise)
    channels = data.train_images.shape[1]
    arch = args.arch if args.arch in SUBSPACE_ARCHS.values() else SUBSPACE_ARCHS.get(channels)
    if arch is None:
        raise UsageError(f"no subspace architecture for {channels}-channel images")
    network = build_network(arch, args.network_width_multiplier, mode=weight_mode(args))
    network.add_task(args.dataset, data.num_classes)
    network.to(device)
    subspace = Subspace.of(network)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    sampler = PointSampler(network, args.subspace_layerwise, generator)
    optimizer = SGD(network.parameters(), args.lr, MOMENTUM, args.weight_decay)
    reg = regulariser(subspace, args.subspace_beta, args.seed)
    for epoch in range(args.epochs):
        optimizer.lr = learning_rate(args, epoch)
        result = train_epoch(sampler, data, args.batch_size, generator, [optimizer], before_step=reg)
        with torch.no_grad():
            cos2 = mean_squared_cosine(vertex_gram(subspace.weights)).item()
        log.line(stage="finetune", method="subspace", task=args.dataset, epoch=f"{epoch + 1}/{args.epochs}",
                 lr=optimizer.lr, loss=result.loss, train_acc=result.accuracy, cos2=cos2)
    centre = evaluate_at(network, subspace, centre_coefficients(subspace.kind, subspace.vertices, device), data, args)
    centre_acc = accuracy(centre, data.test_labels)
    save_checkpoint(Path(args.save_folder), network, arch, {
        "benchmark": args.benchmark, "task": args.dataset, "stage": "finetune", "subspace": subspace.kind,
        "vertices": subspace.vertices, "layerwise": args.subspace_layerwise, "beta": args.subspace_beta,
        "label_noise": args.subspace_label_noise, "accuracy": round(centre_acc, 4), "cos2": round(cos2, 6)})
    log.decision(stage="finetune", method="subspace", task=args.dataset, exit=0, state="OK",
                 reason="subspace trained", centre_acc=centre_acc, cos2=cos2)
    return ExitCode.OK


def sweep(args: argparse.Namespace, log: RunLog, device: torch.device) -> ExitCode:
    payload = load_checkpoint(Path(args.load_folder))
    if payload["mode"] not in SUBSPACE_MODES:
        raise UsageError(f"{args.load_folder} holds a {payload['mode']} network, not a subspace")
    network = network_from_checkpoint(payload).to(device)
    if network.tasks[0].name != args.dataset:
        raise UsageError(f"{args.load_folder} learned {network.tasks[0].name}, not {args.dataset}")
    subspace = Subspace.of(network)
    data = load_data(args, device)
    labels = data.test_labels
    alphas = [k / ALPHA_STEPS for k in range(ALPHA_STEPS + 1)]
    logits = [evaluate_at(network, subspace, subspace.at_alpha(a, device), data, args) for a in alphas]
    rows = [{"alpha": round(a, 2), "accuracy": round(accuracy(logits[k], labels), 4),
             "paired_alpha": round(1 - a, 2),
             "ensemble_accuracy": round(accuracy(logits[k] + logits[ALPHA_STEPS - k], labels), 4)}
            for k, a in enumerate(alphas)]
    if subspace.kind == "simplex":
        centre = evaluate_at(network, subspace, centre_coefficients("simplex", subspace.vertices, device), data, args)
    else:
        centre = logits[ALPHA_STEPS // 2]
    gram = vertex_gram(subspace.weights).detach()
    summary = {
        "subspace": subspace.kind, "vertices": subspace.vertices, "task": args.dataset,
        "midpoint_acc": rows[ALPHA_STEPS // 2]["accuracy"], "endpoint0_acc": rows[0]["accuracy"],
        "endpoint1_acc": rows[-1]["accuracy"], "endpoint_ensemble_acc": rows[0]["ensemble_accuracy"],
        "centre_acc": round(accuracy(centre, labels), 4),
        "centre_ece": round(expected_calibration_error(centre, labels), 4),
        "endpoint_cos2": round(squared_cosine(gram, 0, 1).item(), 6),
        "mean_pair_cos2": round(mean_squared_cosine(gram).item(), 6),
    }
    paths = write_report(rows, summary, Path(args.save_folder or args.load_folder),
                         f"{subspace.kind} ({subspace.vertices} vertices) on {args.dataset}")
    print(json.dumps({**summary, **{k: str(v) for k, v in paths.items()}}))
    log.line(stage="inference", method="subspace", **{k: v for k, v in summary.items() if k != "task"},
             task=args.dataset)
    return ExitCode.OK


def run(args: argparse.Namespace) -> ExitCode:
    check_flags(args)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    log = RunLog(args.log_path)
    if args.mode == "finetune":
        return finetune(args, log, device)
    return sweep(args, log, device)
