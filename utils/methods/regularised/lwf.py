"""LwF's parts: the old tasks' logits on the new task's images, and the distillation loss on them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unforget.models.layers.per_task import PerTask
from unforget.models.network import TaskNetwork


def distillation(logits: torch.Tensor, recorded: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(recorded / T) || softmax(logits / T)), the mean over the batch. The paper's loss is the
    cross-entropy against the recorded softened outputs; the two differ by the recorded outputs' entropy, a
    constant, so the gradients are the same and this one is exactly 0 when the outputs equal the recorded."""
    target = F.log_softmax(recorded.float() / temperature, dim=1)
    current = F.log_softmax(logits.float() / temperature, dim=1)
    return (target.exp() * (target - current)).sum(dim=1).mean()


def old_task_logits(network: TaskNetwork, images: torch.Tensor, tasks: list[int]) -> list[torch.Tensor]:
    """Each of `tasks`' logits on `images`, then the active task again. Their per-task modules (batch-norm)
    compute in eval mode: the new task's images must not move an old task's running statistics, and the
    recorded outputs were computed the same way."""
    active = network.active_task
    for module in network.modules():
        if isinstance(module, PerTask):
            for task in tasks:
                module.per_task[task - 1].eval()
    outputs = []
    for task in tasks:
        network.set_task(task)
        outputs.append(network(images))
    network.set_task(active)
    return outputs


def heads(network: TaskNetwork, tasks: list[int]) -> list[torch.nn.Parameter]:
    """The heads of `tasks`: the old ones are theta_o, which LwF trains jointly with the body and the new head."""
    heads = network.heads
    assert isinstance(heads, PerTask), "the plain layer mode has a head per task"
    return [p for task in tasks for p in heads.task_parameters(task)]
