"""Training N students at once: per-student squared error, summed so students stay independent.

Adam with plateau decay (factor 1/sqrt(10) when the epoch loss stops falling) and an early stop
once the learning rate falls below `min_lr`: recovering neurons to 1e-3 cosine dissimilarity
needs students fitted to a very low loss, and the decays are what get them there. With the
batch as large as the probe set an epoch is one step, the cheapest way to that precision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from unforget.utils.board import Board
from unforget.utils.data.tasks import TensorBatches
from unforget.utils.engine import EpochResult, TrainLoop, run_epochs

DECAY = 1 / math.sqrt(10)


@dataclass(frozen=True)
class TrainSettings:
    lr: float
    epochs: int
    batch_size: int
    patience: int = 100
    cooldown: int = 100
    min_lr: float = 1e-7
    log_every: int = 1000
    seed: int = 1
    """seeds the order of the probe batches"""


def student_losses(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each student over examples and outputs: [N]."""
    return (output - target).pow(2).mean(dim=(-2, -1))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """Per-student losses on (x, y), in batches."""
    total: torch.Tensor | None = None
    for start in range(0, len(x), batch_size):
        chunk = student_losses(model(x[start:start + batch_size]), y[start:start + batch_size])
        chunk = chunk * min(batch_size, len(x) - start)
        total = chunk if total is None else total + chunk
    if total is None:
        raise ValueError("no examples to evaluate the students on")
    return total / len(x)


def train_students(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                   report: Callable[..., object] | None = None,
                   on_epoch: Callable[[int], None] | None = None, board: Board | None = None) -> torch.Tensor:
    """Train every parameter of `model` (output [N, B, out]) on (x, y) through the engine's epoch
    driver, the loss summed over students, calling `on_epoch(epoch)` after each epoch; returns the
    final per-student losses. Each log line (every `log_every` epochs: an epoch is often one step)
    also goes to `board`."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=DECAY, patience=settings.patience,
                                                         cooldown=settings.cooldown, threshold=0.0,
                                                         min_lr=settings.min_lr / 2)
    data = TensorBatches(x, y)
    loop = TrainLoop(model, [optimizer], x.device, loss=lambda output, target: student_losses(output, target).sum(),
                     count_correct=False)
    with torch.no_grad():
        students = model(x[:1]).shape[0]  # the loss is summed over them; the log shows one student's
    started = time.monotonic()

    def decay_or_stop(epoch: int, result: EpochResult) -> bool:
        plateau.step(result.loss)
        if on_epoch:
            on_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stop = lr < settings.min_lr
        if epoch % settings.log_every == 0 or stop or epoch == settings.epochs:
            seconds = round(time.monotonic() - started, 1)
            if report:
                report(epoch=epoch, loss=f"{result.loss / students:.3e}", lr=f"{lr:.1e}", seconds=seconds)
            if board:
                board.epoch(epoch, loss=result.loss / students, lr=lr, seconds=seconds)
        return stop

    run_epochs(loop, data, min(settings.batch_size, len(x)), data.generator(settings.seed), settings.epochs,
               stop=decay_or_stop, description="students")
    return evaluate(model, x, y)
