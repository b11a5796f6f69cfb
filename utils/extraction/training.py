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


def student_losses(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each student over examples and outputs: [N]."""
    return (output - target).pow(2).mean(dim=(-2, -1))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """Per-student losses on (x, y), in batches."""
    total = None
    for start in range(0, len(x), batch_size):
        chunk = student_losses(model(x[start:start + batch_size]), y[start:start + batch_size])
        chunk = chunk * min(batch_size, len(x) - start)
        total = chunk if total is None else total + chunk
    return total / len(x)


def train_students(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                   report: Callable[..., None] | None = None) -> torch.Tensor:
    """Train every parameter of `model` (output [N, B, out]) on (x, y); returns the final per-student losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=DECAY, patience=settings.patience,
                                                         cooldown=settings.cooldown, threshold=0.0,
                                                         min_lr=settings.min_lr / 2)
    generator = torch.Generator(device=x.device).manual_seed(0)
    batch = min(settings.batch_size, len(x))
    started = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(len(x), generator=generator, device=x.device) if batch < len(x) else None
        epoch_loss = torch.zeros((), device=x.device)
        for start in range(0, len(x) - batch + 1, batch):
            index = order[start:start + batch] if order is not None else slice(None)
            losses = student_losses(model(x[index]), y[index])
            loss = losses.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach()
        mean_loss = float(epoch_loss) / (len(x) // batch)  # summed over students, as trained
        plateau.step(mean_loss)
        lr = optimizer.param_groups[0]["lr"]
        stop = lr < settings.min_lr
        if report and (epoch % settings.log_every == 0 or stop or epoch == settings.epochs):
            report(epoch=epoch, loss=f"{mean_loss / losses.numel():.3e}", lr=f"{lr:.1e}",
                   seconds=round(time.monotonic() - started, 1))
        if stop:
            break
    return evaluate(model, x, y)

