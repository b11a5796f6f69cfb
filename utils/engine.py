"""Training and evaluation loops, and the one epoch driver every method trains with. Metrics stay
on the device and are read once per epoch."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.distributed import summed
from unforget.utils.optim import Optimizer
from unforget.utils.speed import DEFAULT_SPEED, Speed

GRAPH_WARMUP_STEPS = 2


@dataclass
class EpochResult:
    loss: float
    accuracy: float


def autocast(device: torch.device, speed: Speed, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast when the speed settings ask for it, else nothing."""
    if not speed.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)


def on_side_stream(step: Callable[[], object], device: torch.device) -> None:
    """Run an eager warm-up step on a side stream, as PyTorch's capture recipe asks."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream(device).wait_stream(side)


def capture_cuda_graph(step: Callable[[], object]) -> Callable[[], None]:
    """Record `step` (after its warm-up) into one CUDA graph; returns the replay. Recording runs nothing."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


class TrainLoop:
    """The training steps of one stage, built once so a captured CUDA graph lives across its epochs.

    One step: forward (in bf16 autocast if asked), `loss` (cross-entropy unless a method brings
    its own objective; it may add regularisers, all in one backward) plus `extra_loss(images)` (a term on
    the batch's images: EWC's penalty, LwF's distillation on old heads), backward, `before_step`
    (between backward and the optimizer steps: masked weight decay), the optimizer
    steps, the metric sums; `after_step` (pruning) runs after it, outside any graph.
    With `speed.cuda_graph` the full-size steps of an epoch are one graph replay each
    (after a few eager warm-up steps, as PyTorch's whole-network capture recipe asks);
    a smaller last batch runs eagerly. Under torchrun `network` is wrapped in DistributedDataParallel
    and the epoch's result sums every rank's share.
    """

    def __init__(self, network: nn.Module, optimizers: Sequence[Optimizer | torch.optim.Optimizer],
                 device: torch.device, speed: Speed = DEFAULT_SPEED, before_step: Callable[[], None] | None = None,
                 after_step: Callable[[], None] | None = None,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
                 count_correct: bool = True, extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.network, self.optimizers, self.device, self.speed = network, optimizers, device, speed
        self.before_step, self.after_step = before_step, after_step
        self.loss, self.count_correct, self.extra_loss = loss, count_correct, extra_loss
        self.loss_sum = torch.zeros((), device=device)
        self.correct_sum = torch.zeros((), device=device, dtype=torch.long)
        self.replay: Callable[[], None] | None = None
        self.static_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.warmup_left = GRAPH_WARMUP_STEPS
        if speed.cuda_graph:
            for optimizer in optimizers:
                if not isinstance(optimizer, Optimizer):  # torch.optim's (the extraction's Adam) runs eagerly only
                    raise TypeError(f"a captured CUDA graph needs utils.optim's optimizers, not {type(optimizer)}")
                optimizer.make_capturable()

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the batch's summed loss and its correct count (on the device)."""
        with autocast(self.device, self.speed, cache=not self.speed.cuda_graph):
            logits = self.network(images)
            loss = self.loss(logits, labels)
            if self.extra_loss is not None:
                loss = loss + self.extra_loss(images)
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        loss.backward()
        if self.before_step:
            self.before_step()
        for optimizer in self.optimizers:
            optimizer.step()
        batch_loss = loss.detach() * labels.shape[0]
        correct = (logits.detach().argmax(1) == labels).sum() if self.count_correct else self.correct_sum.new_zeros(())
        if self.speed.device_metrics:
            self.loss_sum += batch_loss
            self.correct_sum += correct
        return batch_loss, correct

    def _graph_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Warm up, then capture the step once on static buffers and replay it for every full batch."""
        if self.replay is None and self.warmup_left > 0:
            self.warmup_left -= 1
            on_side_stream(lambda: self._step(images, labels), self.device)
            return
        if self.replay is None or self.static_batch is None:  # the two are set together
            static_images, static_labels = self.static_batch = (images.clone(), labels.clone())
            for optimizer in self.optimizers:
                optimizer.zero_grad()
            self.replay = capture_cuda_graph(lambda: self._step(static_images, static_labels))
        else:
            self.static_batch[0].copy_(images)
            self.static_batch[1].copy_(labels)
        self.replay()

    def epoch(self, data: DeviceTaskData, batch_size: int, generator: torch.Generator) -> EpochResult:
        """One pass over the shuffled, augmented training set."""
        self.network.train()
        self.loss_sum.zero_()
        self.correct_sum.zero_()
        host_loss, host_correct, seen = 0.0, 0, 0
        for images, labels in data.train_batches(batch_size, generator):
            if self.speed.cuda_graph and labels.numel() == batch_size:
                self._graph_step(images, labels)
            else:
                batch_loss, correct = self._step(images, labels)
                if not self.speed.device_metrics:
                    host_loss += batch_loss.item()
                    host_correct += int(correct.item())
            if self.after_step:
                self.after_step()
            seen += labels.shape[0]
        if self.speed.device_metrics:
            host_loss, host_correct = self.loss_sum.item(), int(self.correct_sum.item())
        total_loss, total_correct, total_seen = summed(host_loss, host_correct, seen)  # every rank's share (torchrun)
        return EpochResult(total_loss / total_seen, total_correct / total_seen)


@dataclass
class Epochs:
    """What `run_epochs` ran: the last epoch's training result, the best validation accuracy and its
    epoch (when it evaluated), and how many epochs ran."""

    last: EpochResult = field(default_factory=lambda: EpochResult(0.0, 0.0))
    best_accuracy: float = -1.0
    best_epoch: int = 0
    count: int = 0
    final: dict[str, float] = field(default_factory=dict)
    """what the stage measured after its last epoch (`StageContext.train`'s `finish`), by TensorBoard tag"""


def run_epochs(loop: TrainLoop, data, batch_size: int, generator: torch.Generator, epochs: int, *,
               schedule: Callable[[int], dict] | None = None, evaluate: Callable[[], float] | None = None,
               log: Callable[[int, EpochResult, dict], None] | None = None,
               keep_best: Callable[[int, EpochResult, float], None] | None = None, patience: int | None = None,
               stop: Callable[[int, EpochResult], bool] | None = None, description: str = "",
               process_start: float | None = None) -> Epochs:
    """The epoch driver: per epoch (1-based) `schedule` sets learning rates and returns fields to log,
    one pass of `loop` over `data`, `evaluate` (validation accuracy), the `log` line (its fields
    include the epoch's seconds and, for the first, the set-up seconds since `process_start`),
    `keep_best` on a new best accuracy, and an early stop after `patience` epochs without one or
    when `stop` says so. A progress bar shows on a terminal only."""
    done = Epochs()
    since_best = 0
    for epoch in tqdm(range(1, epochs + 1), desc=description, unit="epoch", leave=False,
                      disable=not sys.stderr.isatty()):
        started = time.time()
        fields = schedule(epoch) if schedule else {}
        done.last, done.count = loop.epoch(data, batch_size, generator), epoch
        if evaluate is not None:
            evaluation_started = time.time()
            accuracy = evaluate()
            fields.update(val_acc=accuracy, eval_seconds=time.time() - evaluation_started)
        if log:
            timing = {"seconds": time.time() - started}
            if epoch == 1 and process_start is not None:
                timing["setup_seconds"] = started - process_start
            log(epoch, done.last, {**timing, **fields})
        if evaluate is not None:
            if accuracy > done.best_accuracy:
                done.best_accuracy, done.best_epoch, since_best = accuracy, epoch, 0
                if keep_best:
                    keep_best(epoch, done.last, accuracy)
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    break
        if stop and stop(epoch, done.last):
            break
    return done


@torch.no_grad()
def predict(network: nn.Module, data: DeviceTaskData, batch_size: int = 500,
            speed: Speed = DEFAULT_SPEED) -> torch.Tensor:
    """Logits (fp32) of the active task on the whole test set."""
    network.eval()
    with autocast(data.device, speed):
        return torch.cat([network(images).float() for images, _ in data.test_batches(batch_size)])


def evaluate(network: nn.Module, data: DeviceTaskData, batch_size: int = 500, speed: Speed = DEFAULT_SPEED) -> float:
    """Accuracy of the active task on the data's evaluation images: a held-out validation split (see
    `utils.data.tasks.hold_out`) or the test images (the reference used those as validation)."""
    logits = predict(network, data, batch_size, speed)
    return (logits.argmax(1) == data.test_labels).sum().item() / data.test_labels.numel()
