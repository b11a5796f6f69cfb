"""HAT's one stage: learn task --dataset on a new network or on the checkpoint of the earlier tasks
(--load_folder), and save every task's network to --save_folder.

Per epoch: the gate's scale anneals from 1/s_max to s_max over the batches; the loss adds c times the
attention-sparsity regulariser; gradients of weights that earlier tasks use are conditioned away, the
embedding's gradient compensated and clipped; the embedding is clamped after the step. Then the
validation loss (at s_max, regulariser included) drives the paper's schedule: the rate falls by
--hat_lr_factor after --hat_lr_patience epochs without a better loss, training stops below --hat_lr_min,
and the network of the best validation loss is the task's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models import build_network, input_options
from unforget.models.layers.base import SharedConv2d, SharedLinear
from unforget.models.layers.hat import HATWeights, hat_layers
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import TrainLoop, evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.hat.settings import HATSettings
from unforget.utils.methods.hat.training import Annealing, Conditioning, hat_loss, sparsity
from unforget.utils.methods.stage import StageContext, open_stage
from unforget.utils.optim import SGD

FLATTENING_META = "input_shape"
"""meta.json's key for the image shape a fully connected network was built for (tools.report rebuilds it)"""


@torch.no_grad()
def kaiming_init(network: TaskNetwork) -> None:
    """The body's weights kaiming-normal (fan-in, ReLU gain) with zero biases: without batch-norm the
    architectures' own init (linear N(0, 0.01)), and torch's default (kaiming-uniform with a = sqrt(5)) that the
    reference's shallower networks use, shrink the signal layer by layer until the digits convnet does not
    train; this init keeps its scale (the gates, 0.5 at the first step, still halve it per layer)."""
    for module in (*network.features.modules(), *network.classifier.modules()):
        if isinstance(module, (SharedConv2d, SharedLinear)) and isinstance(module.weights, HATWeights):
            nn.init.kaiming_normal_(module.weights.weight, nonlinearity="relu")
            if module.weights.bias is not None:
                nn.init.zeros_(module.weights.bias)


def new_network(settings: HATSettings, options: dict) -> TaskNetwork:
    arch = settings.needed(settings.arch, "arch")
    network = build_network(arch, 1.0, mode=settings.LAYER_MODE, **options)
    kaiming_init(network)
    for layer in hat_layers(network):
        layer.s_max.fill_(settings.hat_smax)
    return network


def stored_network(settings: HATSettings, options: dict) -> TaskNetwork:
    """The earlier tasks' network, refused (64) when it is not a HAT network of these settings."""
    folder = Path(settings.needed(settings.load_folder, "load_folder"))
    payload = load_checkpoint(folder)
    if payload["mode"] != settings.LAYER_MODE or payload["arch"] != settings.arch:
        raise UsageError(f"{folder} holds a {payload['arch']} network in layer mode {payload['mode']}; --method hat "
                         f"continues a {settings.arch} network in mode {settings.LAYER_MODE}")
    network = network_from_checkpoint(payload, **options)
    stored = {float(layer.s_max) for layer in hat_layers(network)}
    if stored != {float(torch.tensor(settings.hat_smax))}:
        raise UsageError(f"{folder} was learned with --hat_smax {sorted(stored)[0]:g}, this task asks for "
                         f"{settings.hat_smax:g}: a run keeps one s_max")
    if settings.dataset in [spec.name for spec in network.tasks]:
        raise UsageError(f"{folder} has learned {settings.dataset} already")
    return network


@dataclass
class Plateau:
    """The paper's schedule on the validation loss, keeping the network of the best loss."""

    network: nn.Module
    lr: float
    factor: float
    patience: int
    lr_min: float
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    waited: int = 0
    stopped: bool = False
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def update(self, loss: float) -> None:
        """One epoch's validation loss: keep the network if it is the best yet, else wait or lower the rate."""
        self.epoch += 1
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = loss, self.epoch, 0
            self.best_state = {name: value.detach().clone() for name, value in self.network.state_dict().items()}
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.lr /= self.factor
            self.waited = 0
            self.stopped = self.lr < self.lr_min

    def restore_best(self) -> None:
        if self.best_state:
            self.network.load_state_dict(self.best_state)


@torch.no_grad()
def validation(network: TaskNetwork, data: DeviceTaskData, layers: list[HATWeights], c: float,
               batch_size: int) -> tuple[float, float]:
    """(loss, accuracy) on the evaluation images at s_max, the loss with the regulariser as in training."""
    network.eval()
    total, correct, count = 0.0, 0, 0
    for images, labels in data.test_batches(batch_size):
        logits = network(images).float()
        loss = F.cross_entropy(logits, labels) + c * sparsity(layers)
        total += loss.item() * labels.numel()
        correct += int((logits.argmax(1) == labels).sum())
        count += labels.numel()
    return total / count, correct / count


def attention_used(layers: list[HATWeights], task: int) -> dict[str, float]:
    """Share of each layer's units that the tasks so far attend to (gate above 0.5 at s_max): the capacity
    HAT has spent, which the paper monitors."""
    shares = {}
    with torch.no_grad():
        for index, layer in enumerate(layers, start=1):
            union = torch.maximum(layer.cumulative, layer.gate(task))
            shares[f"layer_{index}"] = round(float((union > 0.5).float().mean()), 4)
    return shares


def learn(stage: StageContext[HATSettings], network: TaskNetwork, task: int, data: DeviceTaskData,
          measure: Callable[[], dict[str, float]] | None = None) -> Plateau:
    """The task's epochs (see the module doc); ends with the best validation loss's network in place, which
    `measure` (its test accuracy, by TensorBoard tag) measures for the run's last step."""
    settings = stage.settings
    layers = hat_layers(network)
    parameters = network.task_parameters(task)
    optimizer = SGD(parameters, settings.lr, momentum=0.0)
    annealing = Annealing(layers, settings.hat_smax, settings.batch_size, data.train_labels.numel())
    hooks = Conditioning(layers, task, annealing, settings.hat_clipgrad, settings.hat_thres_cosh,
                         settings.hat_thres_emb, parameters)
    plateau = Plateau(network, settings.lr, settings.hat_lr_factor, settings.hat_lr_patience, settings.hat_lr_min)
    loop = TrainLoop(network, [optimizer], data.device, before_step=hooks.before_step, after_step=hooks.after_step,
                     loss=hat_loss(layers, settings.hat_c))
    rate = {"lr": settings.lr}

    def schedule(epoch: int) -> dict:
        optimizer.lr = rate["lr"] = plateau.lr
        annealing.start_epoch()
        return dict(rate)

    def validate() -> float:
        loss, accuracy = validation(network, data, layers, settings.hat_c, settings.val_batch_size)
        plateau.update(loss)
        rate["val_loss"] = round(loss, 6)
        return accuracy

    def keep_best() -> dict[str, float]:
        plateau.restore_best()
        annealing.finish()
        return measure() if measure is not None else {}

    stage.train(loop, data, "hat", schedule=schedule, evaluate=validate, stop=lambda epoch, result: plateau.stopped,
                finish=keep_best, description=f"hat {settings.dataset}")
    return plateau


def run(settings: HATSettings, process_start: float) -> ExitCode:
    stage = open_stage(settings, process_start)
    task_data = stage.load_task()
    options = input_options(settings.needed(settings.arch, "arch"), task_data.image_shape)
    network = stored_network(settings, options) if settings.load_folder else new_network(settings, options)
    task = network.add_task(settings.dataset, task_data.num_classes)
    network.to(stage.device)
    trained, held = stage.validation_split(task_data)
    test_data = stage.on_device(trained)
    data = stage.on_device(held) if held is not None else test_data
    measured: dict[str, float] = {}

    def measure() -> dict[str, float]:
        measured["test_acc"] = evaluate(network, test_data, settings.val_batch_size)
        return measured

    plateau = learn(stage, network, task, data, measure)
    test_accuracy = measured["test_acc"]
    used = attention_used(hat_layers(network), task)
    meta = {"benchmark": settings.benchmark, "task": settings.dataset, "accuracy": round(test_accuracy, 4),
            "val_loss": round(plateau.best_loss, 6), "best_epoch": plateau.best_epoch, "attention_used": used,
            **({FLATTENING_META: list(task_data.image_shape)} if options else {})}
    stage.save(Path(settings.needed(settings.save_folder, "save_folder")), network, meta)
    return stage.decide(ExitCode.OK, test_acc=round(test_accuracy, 4), best_epoch=plateau.best_epoch,
                        units_used=used)
