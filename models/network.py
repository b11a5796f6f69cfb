"""A multi-task network: shared body, per-task batch-norm and heads, one active task."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from unforget.models.layers.base import (
    LayerMode,
    SharedConv2d,
    SharedLinear,
    TaskSpec,
    TaskState,
    WeightMode,
    layer_mode,
)


def _task_parameters(module: nn.Module, task: int) -> list[nn.Parameter]:
    if isinstance(module, TaskState):
        return module.task_parameters(task)
    chosen = list(module.parameters(recurse=False))
    for child in module.children():
        chosen += _task_parameters(child, task)
    return chosen


class TaskNetwork(nn.Module):
    """Body (`features`, then `classifier`) built from shared layers, then the active task's head.

    Subclasses build `features`, `classifier` and `heads` from `self.layers` (the layer mode);
    this class keeps the task list and tells every per-task module which task is added, restored
    or active.
    """

    features: nn.Module
    classifier: nn.Module
    heads: nn.Module
    torchvision_arch: str | None = None
    """the torchvision model whose ImageNet state dict fits this network (`models/pretrained.py`)"""

    def __init__(self, width: float, mode: str):
        super().__init__()
        self.width, self.mode = width, mode
        self.layers: LayerMode = layer_mode(mode)
        self.tasks: list[TaskSpec] = []

    def _spec(self, name: str, num_classes: int, width: float | None) -> TaskSpec:
        width = self.width if width is None else width
        if width > self.width:
            raise ValueError(f"task {name!r} has width {width}, wider than the network ({self.width})")
        return TaskSpec(name, num_classes, width)

    def _per_task_modules(self) -> list[TaskState]:
        return [m for m in self.modules() if isinstance(m, TaskState)]  # body first, heads last

    def add_task(self, name: str, num_classes: int, width: float | None = None) -> int:
        """Append a task to learn at `width` (default: the network's width); returns its 1-based id."""
        spec = self._spec(name, num_classes, width)
        self.tasks.append(spec)
        for module in self._per_task_modules():
            module.add_task(spec)
        self.set_task(len(self.tasks))
        return len(self.tasks)

    def restore_tasks(self, specs: Sequence[TaskSpec]) -> int:
        """Append stored tasks whose values a checkpoint fills in next: every per-task module makes room
        for all of them in one call (a stack sized once, no learning state built), so rebuilding k tasks
        costs O(k), not a replay of k additions; returns the last task's id."""
        specs = [self._spec(spec.name, spec.num_classes, spec.width) for spec in specs]
        modules = self._per_task_modules()
        self.tasks.extend(specs)
        for module in modules:
            module.restore_tasks(specs)
        if self.tasks:
            self.set_task(len(self.tasks))
        return len(self.tasks)

    def restore_task(self, spec: TaskSpec) -> int:
        """Append one stored task (see `restore_tasks`)."""
        return self.restore_tasks([spec])

    def take_over(self, name: str, num_classes: int) -> int:
        """Let a new task continue from the latest task's weights, batch-norm and head (the
        finetune baselines); returns its id, which is the latest task's."""
        last = self.tasks[-1]
        if last.num_classes != num_classes:
            raise ValueError(f"task {name!r} has {num_classes} classes, the loaded head {last.num_classes}")
        self.tasks[-1] = TaskSpec(name, num_classes, last.width)
        return len(self.tasks)

    def set_task(self, task: int) -> None:
        if not 1 <= task <= len(self.tasks):
            raise ValueError(f"task {task} is not one of the {len(self.tasks)} tasks of this network")
        self.active_task = task
        for module in self.modules():
            if isinstance(module, TaskState):
                module.set_task(task)

    def task_id(self, name: str) -> int:
        for index, spec in enumerate(self.tasks, start=1):
            if spec.name == name:
                return index
        raise KeyError(name)

    def body_weights(self) -> list[WeightMode]:
        """The weight modes of the shared body (not the heads)."""
        return [m for m in (*self.features.modules(), *self.classifier.modules()) if isinstance(m, WeightMode)]

    def shared_weight_count(self, width: float) -> int:
        """Weights of the shared body's conv and linear layers at `width` (from their geometry: nothing is built)."""
        return sum(math.prod(module.geometry.shape(width))
                   for module in (*self.features.modules(), *self.classifier.modules())
                   if isinstance(module, (SharedConv2d, SharedLinear)))

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """What training task `task` may change, as each per-task module and weight mode declares
        (never another task's batch-norm, bias or head, never a piggymask)."""
        return _task_parameters(self, task)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.classifier(self.features(x)))
