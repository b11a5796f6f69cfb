"""Training and evaluation loops. Metrics stay on the device and are read once per epoch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.network import TaskNetwork
from utils.data.tasks import DeviceTaskData
from utils.optim import Optimizer


@dataclass
class EpochResult:
    loss: float
    accuracy: float


def train_epoch(network: TaskNetwork, data: DeviceTaskData, batch_size: int, generator: torch.Generator,
                optimizers: list[Optimizer], before_step: Callable[[], None] | None = None,
                after_step: Callable[[], None] | None = None) -> EpochResult:
    """One pass over the shuffled, augmented training set.

    `before_step` runs between backward and the optimizer steps (masked weight
    decay), `after_step` after them (pruning)."""
    network.train()
    total_loss = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    seen = 0
    for images, labels in data.train_batches(batch_size, generator):
        logits = network(images)
        loss = F.cross_entropy(logits, labels)
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        if before_step:
            before_step()
        for optimizer in optimizers:
            optimizer.step()
        if after_step:
            after_step()
        total_loss += loss.detach() * labels.numel()
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += labels.numel()
    return EpochResult(total_loss.item() / seen, correct.item() / seen)


@torch.no_grad()
def predict(network: TaskNetwork, data: DeviceTaskData, batch_size: int = 500) -> torch.Tensor:
    """Logits of the active task on the whole test set."""
    network.eval()
    return torch.cat([network(images) for images, _ in data.test_batches(batch_size)])


def evaluate(network: TaskNetwork, data: DeviceTaskData, batch_size: int = 500) -> float:
    """Test accuracy of the active task (the reference uses the test set as validation)."""
    logits = predict(network, data, batch_size)
    return (logits.argmax(1) == data.test_labels).sum().item() / data.test_labels.numel()
